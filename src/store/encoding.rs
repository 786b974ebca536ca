//! The versioned on-disk format of a snapshot: one format byte, then the bincode
//! encoding of a record owned by this module. The records are not the model: the model
//! (`crate::model`) changes whenever the server learns something new, and a snapshot
//! written today must still read after that. So each format has its own plain serde
//! types here, converted to and from the model, and a released record never changes; a
//! new layout is a new format with new records, and the old decoder stays. A reader
//! refuses a version it does not know instead of guessing. The fixture files in
//! `tests/fixtures/snapshot-format-*.bin` are snapshots of each released format that
//! the tests decode, so a change that breaks one fails CI.
//!
//! - 1: the first format.
//! - 2: the optional parts move into one `extras` (details, hidden details, callback
//!   URL, idempotency key, and the new action plan, delivery plan and policy). Written
//!   by bincode from the model types themselves.
//! - 3: the records of [`v3`], which reproduce format 2 field for field (a format-2
//!   snapshot reads with them) but belong to the store, so the model may change
//!   without changing the bytes.
//! - 4: the records of [`v4`]: format 3 with the enrolled factor a challenge is
//!   answered with (`totp`) at the end of its extras.
//! - 5: the records of [`v5`]: format 4 with a `webauthn` challenge's ceremony at the
//!   end of its extras.
//! - 6: the records of [`v6`]: format 5 with the methods of a challenge that offers
//!   several (`model::method`) at the end of its extras.
//! - 7: the records of [`v7`]: format 6 with the organisation of each actor of a
//!   one-time-use action challenge at the end of its extras.
//!   The state `pending` was appended as variant 7 of the state record (the indices
//!   before it unchanged, so every stored snapshot of any format reads).

use serde::de::DeserializeOwned;

use crate::model::Challenge;

use super::StoreError;

pub const FORMAT_VERSION: u8 = 7;

/// The oldest format this build still reads.
pub const OLDEST_READABLE: u8 = 1;

pub fn encode(challenge: &Challenge) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    out.push(FORMAT_VERSION);
    bincode::serialize_into(&mut out, &v7::ChallengeRecord::from(challenge))
        .expect("a challenge always encodes");
    out
}

pub fn decode(bytes: &[u8]) -> Result<Challenge, StoreError> {
    let record = match bytes.split_first() {
        Some((&FORMAT_VERSION, rest)) => return read::<v7::ChallengeRecord>(rest)?.try_into(),
        Some((&6, rest)) => return read::<v6::ChallengeRecord>(rest)?.try_into(),
        Some((&5, rest)) => return read::<v5::ChallengeRecord>(rest)?.try_into(),
        Some((&4, rest)) => return read::<v4::ChallengeRecord>(rest)?.try_into(),
        Some((&3, rest)) => read::<v3::ChallengeRecord>(rest)?,
        Some((&2, rest)) => read::<v2::ChallengeRecord>(rest)?,
        Some((&1, rest)) => read::<v1::ChallengeRecord>(rest)?.into(),
        Some((version, _)) => {
            return Err(StoreError::Format(format!(
                "unknown snapshot version {version}"
            )))
        }
        None => return Err(StoreError::Format("empty snapshot".into())),
    };
    Challenge::try_from(record)
}

fn read<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, StoreError> {
    bincode::deserialize(bytes).map_err(|e| StoreError::Format(e.to_string()))
}

/// Format 7: format 6's records, and the organisation of each actor of a one-time-use
/// action challenge (an action's token names it). As in format 6, the nested extras are
/// written field by field before the new field.
mod v7 {
    use serde::{Deserialize, Serialize};

    use super::{v3, v6};
    use crate::clock::Millis;
    use crate::model::Challenge;
    use crate::store::StoreError;

    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct ChallengeRecord {
        pub id: [u8; 16],
        pub tenant: Box<str>,
        pub kind: v3::ChallengeTypeRecord,
        pub user_id: Box<str>,
        pub actors: Vec<v3::ActorRecord>,
        pub created_at: Millis,
        pub life: v3::LifecycleRecord,
        pub retention_ms: i64,
        pub extras: Option<ExtrasRecord>,
    }

    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct ExtrasRecord {
        pub base: v6::ExtrasRecord,
        /// In actor order; empty when none was named.
        pub actor_orgs: Vec<Box<str>>,
    }

    impl From<&Challenge> for ChallengeRecord {
        fn from(c: &Challenge) -> Self {
            // Format 6's record has a place for everything but the actors' orgs.
            let r = v6::ChallengeRecord::from(c);
            ChallengeRecord {
                id: r.id,
                tenant: r.tenant,
                kind: r.kind,
                user_id: r.user_id,
                actors: r.actors,
                created_at: r.created_at,
                life: r.life,
                retention_ms: r.retention_ms,
                extras: r.extras.map(|base| ExtrasRecord {
                    base,
                    actor_orgs: c
                        .actions()
                        .map(|plan| plan.actor_orgs.clone())
                        .unwrap_or_default(),
                }),
            }
        }
    }

    impl TryFrom<ChallengeRecord> for Challenge {
        type Error = StoreError;

        fn try_from(r: ChallengeRecord) -> Result<Self, StoreError> {
            let (base, orgs) = match r.extras {
                Some(e) => (Some(e.base), e.actor_orgs),
                None => (None, Vec::new()),
            };
            let mut challenge = Challenge::try_from(v6::ChallengeRecord {
                id: r.id,
                tenant: r.tenant,
                kind: r.kind,
                user_id: r.user_id,
                actors: r.actors,
                created_at: r.created_at,
                life: r.life,
                retention_ms: r.retention_ms,
                extras: base,
            })?;
            if !orgs.is_empty() {
                let plan = challenge.actions_mut().ok_or_else(|| {
                    StoreError::Format("actor organisations outside an action plan".into())
                })?;
                plan.actor_orgs = orgs;
            }
            Ok(challenge)
        }
    }
}

/// Format 6: format 5's records, and the methods of a challenge that offers several.
/// As in format 5, the nested extras are written field by field before the new field.
mod v6 {
    use serde::{Deserialize, Serialize};

    use super::{v3, v5};
    use crate::clock::Millis;
    use crate::model::{
        Challenge, ChallengeType, FactorId, KindData, Method, MethodId, MethodState, TokenHash,
    };
    use crate::store::StoreError;

    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct ChallengeRecord {
        pub id: [u8; 16],
        pub tenant: Box<str>,
        pub kind: v3::ChallengeTypeRecord,
        pub user_id: Box<str>,
        pub actors: Vec<v3::ActorRecord>,
        pub created_at: Millis,
        pub life: v3::LifecycleRecord,
        pub retention_ms: i64,
        pub extras: Option<ExtrasRecord>,
    }

    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct ExtrasRecord {
        pub base: v5::ExtrasRecord,
        pub methods: Vec<MethodRecord>,
    }

    /// One method. Its kind keeps at most one of `delivery` and `factor`.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct MethodRecord {
        pub id: [u8; 16],
        pub kind: v3::ChallengeTypeRecord,
        pub state: MethodStateRecord,
        pub attempts: u32,
        pub max_attempts: u32,
        pub started_at: Option<Millis>,
        /// The keyed hash of each actor's secret, in actor order.
        pub hashes: Vec<[u8; 32]>,
        pub delivery: Option<v3::DeliveryPlanRecord>,
        pub factor: Option<[u8; 16]>,
    }

    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
    pub enum MethodStateRecord {
        Open = 0,
        Verified = 1,
        Declined = 2,
        Failed = 3,
    }

    impl From<MethodState> for MethodStateRecord {
        fn from(s: MethodState) -> Self {
            match s {
                MethodState::Open => MethodStateRecord::Open,
                MethodState::Verified => MethodStateRecord::Verified,
                MethodState::Declined => MethodStateRecord::Declined,
                MethodState::Failed => MethodStateRecord::Failed,
            }
        }
    }

    impl From<MethodStateRecord> for MethodState {
        fn from(s: MethodStateRecord) -> Self {
            match s {
                MethodStateRecord::Open => MethodState::Open,
                MethodStateRecord::Verified => MethodState::Verified,
                MethodStateRecord::Declined => MethodState::Declined,
                MethodStateRecord::Failed => MethodState::Failed,
            }
        }
    }

    impl From<&Method> for MethodRecord {
        fn from(m: &Method) -> Self {
            MethodRecord {
                id: *m.id.as_bytes(),
                kind: m.kind.into(),
                state: m.state.into(),
                attempts: m.attempts,
                max_attempts: m.max_attempts,
                started_at: m.started_at,
                hashes: m.hashes.iter().map(|h| h.0).collect(),
                delivery: m.delivery().map(v3::DeliveryPlanRecord::from),
                factor: match &m.data {
                    KindData::Factor(id) => Some(*id.as_bytes()),
                    _ => None,
                },
            }
        }
    }

    impl TryFrom<MethodRecord> for Method {
        type Error = StoreError;

        fn try_from(r: MethodRecord) -> Result<Self, StoreError> {
            let data = match (r.delivery, r.factor) {
                (None, None) => KindData::None,
                (Some(plan), None) => KindData::Delivery(plan.into()),
                (None, Some(id)) => KindData::Factor(FactorId::from_bytes(id)),
                (Some(_), Some(_)) => {
                    return Err(StoreError::Format(
                        "a method holds both a delivery plan and a factor".into(),
                    ))
                }
            };
            Ok(Method {
                id: MethodId::from_bytes(r.id),
                kind: ChallengeType::from(r.kind),
                state: r.state.into(),
                attempts: r.attempts,
                max_attempts: r.max_attempts,
                started_at: r.started_at,
                hashes: r.hashes.into_iter().map(TokenHash).collect(),
                data,
            })
        }
    }

    impl From<&Challenge> for ChallengeRecord {
        fn from(c: &Challenge) -> Self {
            // Format 5's record has a place for everything but the methods.
            let r = v5::ChallengeRecord::from(c);
            ChallengeRecord {
                id: r.id,
                tenant: r.tenant,
                kind: r.kind,
                user_id: r.user_id,
                actors: r.actors,
                created_at: r.created_at,
                life: r.life,
                retention_ms: r.retention_ms,
                extras: r.extras.map(|base| ExtrasRecord {
                    base,
                    methods: c.methods().iter().map(MethodRecord::from).collect(),
                }),
            }
        }
    }

    impl TryFrom<ChallengeRecord> for Challenge {
        type Error = StoreError;

        fn try_from(r: ChallengeRecord) -> Result<Self, StoreError> {
            let (base, methods) = match r.extras {
                Some(e) => (Some(e.base), e.methods),
                None => (None, Vec::new()),
            };
            let mut challenge = Challenge::try_from(v5::ChallengeRecord {
                id: r.id,
                tenant: r.tenant,
                kind: r.kind,
                user_id: r.user_id,
                actors: r.actors,
                created_at: r.created_at,
                life: r.life,
                retention_ms: r.retention_ms,
                extras: base,
            })?;
            if !methods.is_empty() {
                let extras = challenge.extras.as_deref_mut().ok_or_else(|| {
                    StoreError::Format("methods outside a snapshot's extras".into())
                })?;
                extras.methods = methods
                    .into_iter()
                    .map(Method::try_from)
                    .collect::<Result<_, _>>()?;
            }
            Ok(challenge)
        }
    }
}

/// Format 5: format 4's records, and the ceremony of a `webauthn` challenge. As in
/// format 4, the nested extras are written field by field before the new field.
mod v5 {
    use serde::{Deserialize, Serialize};

    use super::{v3, v4};
    use crate::clock::Millis;
    use crate::model::{Challenge, FactorId, KindData, WebauthnPlan};
    use crate::store::StoreError;

    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct ChallengeRecord {
        pub id: [u8; 16],
        pub tenant: Box<str>,
        pub kind: v3::ChallengeTypeRecord,
        pub user_id: Box<str>,
        pub actors: Vec<v3::ActorRecord>,
        pub created_at: Millis,
        pub life: v3::LifecycleRecord,
        pub retention_ms: i64,
        pub extras: Option<ExtrasRecord>,
    }

    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct ExtrasRecord {
        pub base: v4::ExtrasRecord,
        pub webauthn: Option<WebauthnPlanRecord>,
    }

    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct WebauthnPlanRecord {
        pub relying_party: Box<str>,
        /// (factor id, credential id) of each allowed credential.
        pub credentials: Vec<([u8; 16], Vec<u8>)>,
        /// The request options, JSON text.
        pub options: Box<str>,
        /// The relying-party crate's authentication state, JSON text.
        pub state: Box<str>,
    }

    impl From<&Challenge> for ChallengeRecord {
        fn from(c: &Challenge) -> Self {
            // Format 4's record has a place for everything but the ceremony.
            let r = v4::ChallengeRecord::from(c);
            ChallengeRecord {
                id: r.id,
                tenant: r.tenant,
                kind: r.kind,
                user_id: r.user_id,
                actors: r.actors,
                created_at: r.created_at,
                life: r.life,
                retention_ms: r.retention_ms,
                extras: r.extras.map(|base| ExtrasRecord {
                    base,
                    webauthn: c.webauthn().map(|p| WebauthnPlanRecord {
                        relying_party: p.relying_party.clone(),
                        credentials: p
                            .credentials
                            .iter()
                            .map(|(f, id)| (*f.as_bytes(), id.clone()))
                            .collect(),
                        options: p.options.clone(),
                        state: p.state.clone(),
                    }),
                }),
            }
        }
    }

    impl TryFrom<ChallengeRecord> for Challenge {
        type Error = StoreError;

        fn try_from(r: ChallengeRecord) -> Result<Self, StoreError> {
            let (base, webauthn) = match r.extras {
                Some(e) => (Some(e.base), e.webauthn),
                None => (None, None),
            };
            let mut challenge = Challenge::try_from(v4::ChallengeRecord {
                id: r.id,
                tenant: r.tenant,
                kind: r.kind,
                user_id: r.user_id,
                actors: r.actors,
                created_at: r.created_at,
                life: r.life,
                retention_ms: r.retention_ms,
                extras: base,
            })?;
            if let Some(p) = webauthn {
                let extras = challenge.extras.as_deref_mut().ok_or_else(|| {
                    StoreError::Format("a ceremony outside a snapshot's extras".into())
                })?;
                if extras.kind != KindData::None {
                    return Err(StoreError::Format(
                        "a snapshot holds both a ceremony and another kind's plan".into(),
                    ));
                }
                extras.kind = KindData::Webauthn(WebauthnPlan {
                    relying_party: p.relying_party,
                    credentials: p
                        .credentials
                        .into_iter()
                        .map(|(f, id)| (FactorId::from_bytes(f), id))
                        .collect(),
                    options: p.options,
                    state: p.state,
                });
            }
            Ok(challenge)
        }
    }
}

/// Format 4: format 3's records, and the factor of a challenge answered with one. The
/// nested format-3 extras are written field by field before the new field, exactly as
/// if they were spelled out here.
mod v4 {
    use serde::{Deserialize, Serialize};

    use super::v3;
    use crate::clock::Millis;
    use crate::model::{Challenge, FactorId, KindData};
    use crate::store::StoreError;

    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct ChallengeRecord {
        pub id: [u8; 16],
        pub tenant: Box<str>,
        pub kind: v3::ChallengeTypeRecord,
        pub user_id: Box<str>,
        pub actors: Vec<v3::ActorRecord>,
        pub created_at: Millis,
        pub life: v3::LifecycleRecord,
        pub retention_ms: i64,
        pub extras: Option<ExtrasRecord>,
    }

    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct ExtrasRecord {
        pub base: v3::ExtrasRecord,
        /// `totp`: the id of the factor whose codes answer it.
        pub factor: Option<[u8; 16]>,
    }

    impl From<&Challenge> for ChallengeRecord {
        fn from(c: &Challenge) -> Self {
            // Format 3's record has a place for everything but the factor.
            let r = v3::ChallengeRecord::from(c);
            ChallengeRecord {
                id: r.id,
                tenant: r.tenant,
                kind: r.kind,
                user_id: r.user_id,
                actors: r.actors,
                created_at: r.created_at,
                life: r.life,
                retention_ms: r.retention_ms,
                extras: r.extras.map(|base| ExtrasRecord {
                    base,
                    factor: c.factor().map(|id| *id.as_bytes()),
                }),
            }
        }
    }

    impl TryFrom<ChallengeRecord> for Challenge {
        type Error = StoreError;

        fn try_from(r: ChallengeRecord) -> Result<Self, StoreError> {
            let (base, factor) = match r.extras {
                Some(e) => (Some(e.base), e.factor),
                None => (None, None),
            };
            let mut challenge = Challenge::try_from(v3::ChallengeRecord {
                id: r.id,
                tenant: r.tenant,
                kind: r.kind,
                user_id: r.user_id,
                actors: r.actors,
                created_at: r.created_at,
                life: r.life,
                retention_ms: r.retention_ms,
                extras: base,
            })?;
            if let Some(id) = factor {
                let extras = challenge.extras.as_deref_mut().ok_or_else(|| {
                    StoreError::Format("a factor outside a snapshot's extras".into())
                })?;
                if extras.kind != KindData::None {
                    return Err(StoreError::Format(
                        "a snapshot holds both a factor and another kind's plan".into(),
                    ));
                }
                extras.kind = KindData::Factor(FactorId::from_bytes(id));
            }
            Ok(challenge)
        }
    }
}

/// Format 3: a challenge as the store lays it out.
///
/// bincode writes a struct as its fields in declaration order and an enum as the index
/// of its variant (a `u32`), without names. So in every record the field order is the
/// format, and every enum's variants keep their order for good: each carries its index
/// as an explicit discriminant, a test checks that bincode writes exactly that, and a
/// variant the model gains later goes into a new format, never into the middle here.
mod v3 {
    use serde::{Deserialize, Serialize};

    use crate::clock::Millis;
    use crate::model::{
        ActionPlan, ActionResult, ActionSet, ActionStatus, ActorDelivery, ActorId, Alphabet,
        Challenge, ChallengeId, ChallengeType, DeliveryChannel, DeliveryPlan, DeliveryStatus,
        Extras, HttpAction, Idempotency, KindData, Lifecycle, PolicyAlias, PolicyRef, ResendMode,
        State, TenantId, TokenHash,
    };
    use crate::store::StoreError;

    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct ChallengeRecord {
        pub id: [u8; 16],
        pub tenant: Box<str>,
        pub kind: ChallengeTypeRecord,
        pub user_id: Box<str>,
        pub actors: Vec<ActorRecord>,
        pub created_at: Millis,
        pub life: LifecycleRecord,
        pub retention_ms: i64,
        pub extras: Option<ExtrasRecord>,
    }

    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
    pub enum ChallengeTypeRecord {
        Token = 0,
        EmailOtp = 1,
        SmsOtp = 2,
        EmailLink = 3,
        Totp = 4,
        Webauthn = 5,
        Push = 6,
        OneTimeUseAction = 7,
    }

    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct ActorRecord {
        pub id: [u8; 16],
        pub user_id: Box<str>,
        /// The keyed hash of the actor's answer token.
        pub token_hash: [u8; 32],
    }

    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
    pub struct LifecycleRecord {
        pub state: StateRecord,
        pub expires_at: Millis,
        pub updated_at: Millis,
        pub max_attempts: u32,
        pub attempts: u32,
        pub answered_by: Option<u16>,
        pub answered_at: Option<Millis>,
    }

    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
    pub enum StateRecord {
        Issued = 0,
        Verified = 1,
        Completed = 2,
        Declined = 3,
        Failed = 4,
        Cancelled = 5,
        Expired = 6,
        /// Appended (never renumbered): a snapshot of a `pending` challenge. Formats 3
        /// to 5 read unchanged; a build that predates it refuses such a snapshot.
        Pending = 7,
    }

    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct ExtrasRecord {
        pub details: Option<Box<str>>,
        pub hidden_details: Option<Box<str>>,
        pub callback_url: Option<Box<str>>,
        pub idempotency: Option<IdempotencyRecord>,
        pub actions: Option<ActionPlanRecord>,
        pub delivery: Option<DeliveryPlanRecord>,
        pub policy: Option<PolicyRefRecord>,
    }

    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct IdempotencyRecord {
        pub key: Box<str>,
        pub request_hash: [u8; 32],
    }

    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct PolicyRefRecord {
        pub alias: Box<str>,
        pub version: u64,
    }

    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct ActionPlanRecord {
        pub approved: Vec<HttpActionRecord>,
        pub declined: Vec<HttpActionRecord>,
        pub chosen: Option<ActionSetRecord>,
        pub results: Vec<ActionResultRecord>,
    }

    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct HttpActionRecord {
        pub method: Box<str>,
        pub uri: Box<str>,
        pub content_type: Option<Box<str>>,
        pub body: Option<Box<str>>,
        pub scopes: Vec<Box<str>>,
    }

    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
    pub enum ActionSetRecord {
        Approved = 0,
        Declined = 1,
    }

    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct ActionResultRecord {
        pub status: ActionStatusRecord,
        pub attempts: u32,
        pub status_code: Option<u16>,
        pub last_error: Option<Box<str>>,
        pub finished_at: Option<Millis>,
    }

    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
    pub enum ActionStatusRecord {
        Pending = 0,
        Succeeded = 1,
        Failed = 2,
    }

    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct DeliveryPlanRecord {
        pub channel: DeliveryChannelRecord,
        pub locale: Option<Box<str>>,
        pub code_length: u8,
        pub code_alphabet: CodeAlphabetRecord,
        pub resend_cooldown_seconds: u32,
        pub max_resends: u32,
        pub resend_mode: ResendModeRecord,
        /// The policy's template set as JSON text.
        pub templates: Option<Box<str>>,
        pub resends: u32,
        pub last_sent_at: Option<Millis>,
        pub actors: Vec<ActorDeliveryRecord>,
    }

    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
    pub enum DeliveryChannelRecord {
        Email = 0,
        Sms = 1,
    }

    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
    pub enum CodeAlphabetRecord {
        Digits = 0,
        Alphanumeric = 1,
    }

    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
    pub enum ResendModeRecord {
        Same = 0,
        Rotate = 1,
    }

    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct ActorDeliveryRecord {
        pub recipient: Box<str>,
        pub status: DeliveryStatusRecord,
        pub attempts: u32,
        pub last_error: Option<Box<str>>,
        pub sent_at: Option<Millis>,
    }

    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
    pub enum DeliveryStatusRecord {
        NotSent = 0,
        Pending = 1,
        Sent = 2,
        Failed = 3,
    }

    // Model → record. Total: everything the model holds has a place in the record.

    impl From<&Challenge> for ChallengeRecord {
        fn from(c: &Challenge) -> Self {
            ChallengeRecord {
                id: *c.id.as_bytes(),
                tenant: c.tenant.as_str().into(),
                kind: c.kind.into(),
                user_id: c.user_id.clone(),
                actors: c.actors.iter().map(ActorRecord::from).collect(),
                created_at: c.created_at,
                life: c.life.into(),
                retention_ms: c.retention_ms,
                extras: c.extras.as_deref().map(ExtrasRecord::from),
            }
        }
    }

    impl From<&crate::model::ActorRecord> for ActorRecord {
        fn from(a: &crate::model::ActorRecord) -> Self {
            ActorRecord {
                id: *a.id.as_bytes(),
                user_id: a.user_id.clone(),
                token_hash: a.token_hash.0,
            }
        }
    }

    impl From<Lifecycle> for LifecycleRecord {
        fn from(l: Lifecycle) -> Self {
            LifecycleRecord {
                state: l.state.into(),
                expires_at: l.expires_at,
                updated_at: l.updated_at,
                max_attempts: l.max_attempts,
                attempts: l.attempts,
                answered_by: l.answered_by,
                answered_at: l.answered_at,
            }
        }
    }

    impl From<&Extras> for ExtrasRecord {
        fn from(e: &Extras) -> Self {
            ExtrasRecord {
                details: e.details.clone(),
                hidden_details: e.hidden_details.clone(),
                callback_url: e.callback_url.clone(),
                idempotency: e.idempotency.as_ref().map(IdempotencyRecord::from),
                actions: match &e.kind {
                    KindData::Actions(plan) => Some(ActionPlanRecord::from(plan)),
                    _ => None,
                },
                delivery: match &e.kind {
                    KindData::Delivery(plan) => Some(DeliveryPlanRecord::from(plan)),
                    _ => None,
                },
                policy: e.policy.as_ref().map(PolicyRefRecord::from),
            }
        }
    }

    impl From<&Idempotency> for IdempotencyRecord {
        fn from(i: &Idempotency) -> Self {
            IdempotencyRecord {
                key: i.key.clone(),
                request_hash: i.request_hash,
            }
        }
    }

    impl From<&PolicyRef> for PolicyRefRecord {
        fn from(p: &PolicyRef) -> Self {
            PolicyRefRecord {
                alias: p.alias.as_str().into(),
                version: p.version,
            }
        }
    }

    impl From<&ActionPlan> for ActionPlanRecord {
        fn from(p: &ActionPlan) -> Self {
            ActionPlanRecord {
                approved: p.approved.iter().map(HttpActionRecord::from).collect(),
                declined: p.declined.iter().map(HttpActionRecord::from).collect(),
                chosen: p.chosen.map(ActionSetRecord::from),
                results: p.results.iter().map(ActionResultRecord::from).collect(),
            }
        }
    }

    impl From<&HttpAction> for HttpActionRecord {
        fn from(a: &HttpAction) -> Self {
            HttpActionRecord {
                method: a.method.clone(),
                uri: a.uri.clone(),
                content_type: a.content_type.clone(),
                body: a.body.clone(),
                scopes: a.scopes.clone(),
            }
        }
    }

    impl From<&ActionResult> for ActionResultRecord {
        fn from(r: &ActionResult) -> Self {
            ActionResultRecord {
                status: r.status.into(),
                attempts: r.attempts,
                status_code: r.status_code,
                last_error: r.last_error.clone(),
                finished_at: r.finished_at,
            }
        }
    }

    impl From<&DeliveryPlan> for DeliveryPlanRecord {
        fn from(p: &DeliveryPlan) -> Self {
            DeliveryPlanRecord {
                channel: p.channel.into(),
                locale: p.locale.clone(),
                code_length: p.code_length,
                code_alphabet: p.code_alphabet.into(),
                resend_cooldown_seconds: p.resend_cooldown_seconds,
                max_resends: p.max_resends,
                resend_mode: p.resend_mode.into(),
                templates: p.templates.clone(),
                resends: p.resends,
                last_sent_at: p.last_sent_at,
                actors: p.actors.iter().map(ActorDeliveryRecord::from).collect(),
            }
        }
    }

    impl From<&ActorDelivery> for ActorDeliveryRecord {
        fn from(d: &ActorDelivery) -> Self {
            ActorDeliveryRecord {
                recipient: d.recipient.clone(),
                status: d.status.into(),
                attempts: d.attempts,
                last_error: d.last_error.clone(),
                sent_at: d.sent_at,
            }
        }
    }

    // Record → model. Fallible only where the model checks what it holds (tenant names,
    // policy aliases), which a damaged snapshot may not satisfy.

    impl TryFrom<ChallengeRecord> for Challenge {
        type Error = StoreError;

        fn try_from(r: ChallengeRecord) -> Result<Self, StoreError> {
            let tenant = TenantId::parse(&r.tenant)
                .ok_or_else(|| StoreError::Format(format!("invalid tenant {:?}", r.tenant)))?;
            let extras = match r.extras {
                Some(extras) => Some(Box::new(Extras::try_from(extras)?)),
                None => None,
            };
            Ok(Challenge {
                id: ChallengeId::from_bytes(r.id),
                tenant,
                kind: r.kind.into(),
                user_id: r.user_id,
                actors: r.actors.into_iter().map(Into::into).collect(),
                created_at: r.created_at,
                life: r.life.into(),
                retention_ms: r.retention_ms,
                extras,
            })
        }
    }

    impl From<ActorRecord> for crate::model::ActorRecord {
        fn from(a: ActorRecord) -> Self {
            crate::model::ActorRecord {
                id: ActorId::from_bytes(a.id),
                user_id: a.user_id,
                token_hash: TokenHash(a.token_hash),
            }
        }
    }

    impl From<LifecycleRecord> for Lifecycle {
        fn from(l: LifecycleRecord) -> Self {
            Lifecycle {
                state: l.state.into(),
                expires_at: l.expires_at,
                updated_at: l.updated_at,
                max_attempts: l.max_attempts,
                attempts: l.attempts,
                answered_by: l.answered_by,
                answered_at: l.answered_at,
            }
        }
    }

    impl TryFrom<ExtrasRecord> for Extras {
        type Error = StoreError;

        fn try_from(e: ExtrasRecord) -> Result<Self, StoreError> {
            let policy = match e.policy {
                Some(p) => Some(PolicyRef {
                    alias: PolicyAlias::parse(&p.alias).ok_or_else(|| {
                        StoreError::Format(format!("invalid policy alias {:?}", p.alias))
                    })?,
                    version: p.version,
                }),
                None => None,
            };
            Ok(Extras {
                details: e.details,
                hidden_details: e.hidden_details,
                callback_url: e.callback_url,
                idempotency: e.idempotency.map(|i| Idempotency {
                    key: i.key,
                    request_hash: i.request_hash,
                }),
                kind: match (e.actions, e.delivery) {
                    (None, None) => KindData::None,
                    (Some(plan), None) => KindData::Actions(plan.into()),
                    (None, Some(plan)) => KindData::Delivery(plan.into()),
                    (Some(_), Some(_)) => {
                        return Err(StoreError::Format(
                            "a snapshot holds both an action plan and a delivery plan".into(),
                        ))
                    }
                },
                policy,
                methods: Vec::new(),
            })
        }
    }

    impl From<ActionPlanRecord> for ActionPlan {
        fn from(p: ActionPlanRecord) -> Self {
            ActionPlan {
                approved: p.approved.into_iter().map(Into::into).collect(),
                declined: p.declined.into_iter().map(Into::into).collect(),
                chosen: p.chosen.map(Into::into),
                results: p.results.into_iter().map(Into::into).collect(),
                actor_orgs: Vec::new(),
            }
        }
    }

    impl From<HttpActionRecord> for HttpAction {
        fn from(a: HttpActionRecord) -> Self {
            HttpAction {
                method: a.method,
                uri: a.uri,
                content_type: a.content_type,
                body: a.body,
                scopes: a.scopes,
            }
        }
    }

    impl From<ActionResultRecord> for ActionResult {
        fn from(r: ActionResultRecord) -> Self {
            ActionResult {
                status: r.status.into(),
                attempts: r.attempts,
                status_code: r.status_code,
                last_error: r.last_error,
                finished_at: r.finished_at,
            }
        }
    }

    impl From<DeliveryPlanRecord> for DeliveryPlan {
        fn from(p: DeliveryPlanRecord) -> Self {
            DeliveryPlan {
                channel: p.channel.into(),
                locale: p.locale,
                code_length: p.code_length,
                code_alphabet: p.code_alphabet.into(),
                resend_cooldown_seconds: p.resend_cooldown_seconds,
                max_resends: p.max_resends,
                resend_mode: p.resend_mode.into(),
                templates: p.templates,
                resends: p.resends,
                last_sent_at: p.last_sent_at,
                actors: p.actors.into_iter().map(Into::into).collect(),
            }
        }
    }

    impl From<ActorDeliveryRecord> for ActorDelivery {
        fn from(d: ActorDeliveryRecord) -> Self {
            ActorDelivery {
                recipient: d.recipient,
                status: d.status.into(),
                attempts: d.attempts,
                last_error: d.last_error,
                sent_at: d.sent_at,
            }
        }
    }

    /// Both directions of a field-less enum, variant for variant; a variant the model
    /// gains fails to compile here until a format has a place for it.
    macro_rules! same_variants {
        ($model:ty, $record:ident { $($variant:ident),+ $(,)? }) => {
            impl From<$model> for $record {
                fn from(v: $model) -> Self {
                    match v {
                        $(<$model>::$variant => $record::$variant,)+
                    }
                }
            }
            impl From<$record> for $model {
                fn from(v: $record) -> Self {
                    match v {
                        $($record::$variant => <$model>::$variant,)+
                    }
                }
            }
        };
    }

    same_variants!(
        ChallengeType,
        ChallengeTypeRecord {
            Token,
            EmailOtp,
            SmsOtp,
            EmailLink,
            Totp,
            Webauthn,
            Push,
            OneTimeUseAction,
        }
    );
    same_variants!(
        State,
        StateRecord {
            Issued,
            Verified,
            Completed,
            Declined,
            Failed,
            Cancelled,
            Expired,
            Pending,
        }
    );
    same_variants!(ActionSet, ActionSetRecord { Approved, Declined });
    same_variants!(
        ActionStatus,
        ActionStatusRecord {
            Pending,
            Succeeded,
            Failed
        }
    );
    same_variants!(DeliveryChannel, DeliveryChannelRecord { Email, Sms });
    same_variants!(
        Alphabet,
        CodeAlphabetRecord {
            Digits,
            Alphanumeric
        }
    );
    same_variants!(ResendMode, ResendModeRecord { Same, Rotate });
    same_variants!(
        DeliveryStatus,
        DeliveryStatusRecord {
            NotSent,
            Pending,
            Sent,
            Failed
        }
    );
}

/// Format 2: bincode of the model types as they stood when the store took the format
/// over. Format 3's records were written to reproduce that layout field for field, so
/// format 2 reads with them (the format-2 fixture files prove it).
mod v2 {
    pub use super::v3::ChallengeRecord;
}

/// Format 1: a challenge from before policies, its optional parts inline.
mod v1 {
    use serde::{Deserialize, Serialize};

    use super::v3::{ActorRecord, ChallengeTypeRecord, IdempotencyRecord, LifecycleRecord};
    use crate::clock::Millis;

    #[derive(Serialize, Deserialize)]
    pub struct ChallengeRecord {
        pub id: [u8; 16],
        pub tenant: Box<str>,
        pub kind: ChallengeTypeRecord,
        pub user_id: Box<str>,
        pub actors: Vec<ActorRecord>,
        pub created_at: Millis,
        pub life: LifecycleRecord,
        pub retention_ms: i64,
        pub details: Option<Box<str>>,
        pub hidden_details: Option<Box<str>>,
        pub callback_url: Option<Box<str>>,
        pub idempotency: Option<IdempotencyRecord>,
    }

    impl From<ChallengeRecord> for super::v3::ChallengeRecord {
        fn from(c: ChallengeRecord) -> Self {
            let has_extras = c.details.is_some()
                || c.hidden_details.is_some()
                || c.callback_url.is_some()
                || c.idempotency.is_some();
            super::v3::ChallengeRecord {
                id: c.id,
                tenant: c.tenant,
                kind: c.kind,
                user_id: c.user_id,
                actors: c.actors,
                created_at: c.created_at,
                life: c.life,
                retention_ms: c.retention_ms,
                extras: has_extras.then_some(super::v3::ExtrasRecord {
                    details: c.details,
                    hidden_details: c.hidden_details,
                    callback_url: c.callback_url,
                    idempotency: c.idempotency,
                    actions: None,
                    delivery: None,
                    policy: None,
                }),
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
    fn a_pending_snapshot_round_trips_with_the_appended_state() {
        let mut c = sample();
        c.life = crate::model::Lifecycle::pending(1, 2, 5);
        let bytes = encode(&c);
        assert_eq!(decode(&bytes).unwrap(), c);
        assert_eq!(
            v3::LifecycleRecord::from(c.life).state,
            v3::StateRecord::Pending
        );
        assert_eq!(v3::StateRecord::Pending as u32, 7);
    }

    #[test]
    fn a_format_1_snapshot_reads_into_the_current_record() {
        let c = sample();
        let current = v3::ChallengeRecord::from(&c);
        let extras = current.extras.clone().unwrap();
        let old = v1::ChallengeRecord {
            id: current.id,
            tenant: current.tenant,
            kind: current.kind,
            user_id: current.user_id,
            actors: current.actors,
            created_at: current.created_at,
            life: current.life,
            retention_ms: current.retention_ms,
            details: extras.details,
            hidden_details: extras.hidden_details,
            callback_url: extras.callback_url,
            idempotency: extras.idempotency,
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

    #[test]
    fn a_snapshot_with_an_invalid_tenant_is_a_format_error() {
        let mut record = v3::ChallengeRecord::from(&sample());
        record.tenant = "a/b".into();
        let mut bytes = vec![3];
        bincode::serialize_into(&mut bytes, &record).unwrap();
        assert!(matches!(decode(&bytes), Err(StoreError::Format(_))));
    }

    /// Snapshots written by the build that introduced each format, checked in once and
    /// never regenerated: decoding them is what proves an old data directory still reads.
    const FORMAT_2_FIXTURES: [(&str, &[u8]); 3] = [
        (
            "token",
            include_bytes!("../../tests/fixtures/snapshot-format-2-token.bin"),
        ),
        (
            "action",
            include_bytes!("../../tests/fixtures/snapshot-format-2-action.bin"),
        ),
        (
            "delivery",
            include_bytes!("../../tests/fixtures/snapshot-format-2-delivery.bin"),
        ),
    ];
    const FORMAT_3_FIXTURES: [(&str, &[u8]); 3] = [
        (
            "token",
            include_bytes!("../../tests/fixtures/snapshot-format-3-token.bin"),
        ),
        (
            "action",
            include_bytes!("../../tests/fixtures/snapshot-format-3-action.bin"),
        ),
        (
            "delivery",
            include_bytes!("../../tests/fixtures/snapshot-format-3-delivery.bin"),
        ),
    ];

    #[test]
    fn format_2_snapshots_decode_into_the_challenges_they_were_written_from() {
        for ((name, bytes), (expected_name, expected)) in
            FORMAT_2_FIXTURES.into_iter().zip(fixture_challenges())
        {
            assert_eq!(name, expected_name);
            assert_eq!(bytes[0], 2, "{name}");
            assert_eq!(decode(bytes).unwrap(), expected, "{name}");
        }
    }

    #[test]
    fn format_3_snapshots_decode_into_the_challenges_they_were_written_from() {
        for ((name, bytes), (expected_name, expected)) in
            FORMAT_3_FIXTURES.into_iter().zip(fixture_challenges())
        {
            assert_eq!(name, expected_name);
            assert_eq!(bytes[0], 3, "{name}");
            assert_eq!(decode(bytes).unwrap(), expected, "{name}");
        }
    }

    const FORMAT_4_FIXTURES: [(&str, &[u8]); 4] = [
        (
            "token",
            include_bytes!("../../tests/fixtures/snapshot-format-4-token.bin"),
        ),
        (
            "action",
            include_bytes!("../../tests/fixtures/snapshot-format-4-action.bin"),
        ),
        (
            "delivery",
            include_bytes!("../../tests/fixtures/snapshot-format-4-delivery.bin"),
        ),
        (
            "totp",
            include_bytes!("../../tests/fixtures/snapshot-format-4-totp.bin"),
        ),
    ];

    #[test]
    fn format_4_snapshots_decode_and_encode_to_the_same_bytes() {
        let mut expected = fixture_challenges().to_vec();
        expected.push(("totp", totp_fixture_challenge()));
        for ((name, bytes), (expected_name, expected)) in
            FORMAT_4_FIXTURES.into_iter().zip(expected)
        {
            assert_eq!(name, expected_name);
            assert_eq!(bytes[0], 4, "{name}");
            let decoded = decode(bytes).unwrap();
            assert_eq!(decoded, expected, "{name}");
            let mut again = vec![4];
            bincode::serialize_into(&mut again, &v4::ChallengeRecord::from(&decoded)).unwrap();
            assert_eq!(again, bytes, "{name}");
            // Format 5 writes format 4's fields first: a format-4 snapshot is format 5's
            // with no ceremony at the end.
            let current = encode(&decoded);
            assert_eq!(current[0], FORMAT_VERSION, "{name}");
            assert_eq!(decode(&current).unwrap(), decoded, "{name}");
        }
    }

    const FORMAT_5_FIXTURES: [(&str, &[u8]); 1] = [(
        "webauthn",
        include_bytes!("../../tests/fixtures/snapshot-format-5-webauthn.bin"),
    )];

    #[test]
    fn format_5_snapshots_decode_and_encode_to_the_same_bytes() {
        for (name, bytes) in FORMAT_5_FIXTURES {
            assert_eq!(bytes[0], 5, "{name}");
            let decoded = decode(bytes).unwrap();
            assert_eq!(decoded, webauthn_fixture_challenge(), "{name}");
            let mut again = vec![5];
            bincode::serialize_into(&mut again, &v5::ChallengeRecord::from(&decoded)).unwrap();
            assert_eq!(again, bytes, "{name}");
            // Format 6 writes format 5's fields first: a format-5 snapshot is format 6's
            // with no methods at the end.
            let current = encode(&decoded);
            assert_eq!(current[0], FORMAT_VERSION, "{name}");
            assert_eq!(decode(&current).unwrap(), decoded, "{name}");
        }
    }

    const FORMAT_6_FIXTURES: [(&str, &[u8]); 1] = [(
        "methods",
        include_bytes!("../../tests/fixtures/snapshot-format-6-methods.bin"),
    )];

    #[test]
    fn format_6_snapshots_decode_and_encode_to_the_same_bytes() {
        for (name, bytes) in FORMAT_6_FIXTURES {
            assert_eq!(bytes[0], 6, "{name}");
            let decoded = decode(bytes).unwrap();
            assert_eq!(decoded, methods_fixture_challenge(), "{name}");
            let mut again = vec![6];
            bincode::serialize_into(&mut again, &v6::ChallengeRecord::from(&decoded)).unwrap();
            assert_eq!(again, bytes, "{name}");
            // Format 7 writes format 6's fields first: a format-6 snapshot is format 7's
            // with no actor organisations at the end.
            let current = encode(&decoded);
            assert_eq!(current[0], FORMAT_VERSION, "{name}");
            assert_eq!(decode(&current).unwrap(), decoded, "{name}");
        }
    }

    const FORMAT_7_FIXTURES: [(&str, &[u8]); 1] = [(
        "action-orgs",
        include_bytes!("../../tests/fixtures/snapshot-format-7-action-orgs.bin"),
    )];

    #[test]
    fn format_7_snapshots_decode_and_encode_to_the_same_bytes() {
        for (name, bytes) in FORMAT_7_FIXTURES {
            assert_eq!(bytes[0], 7, "{name}");
            let decoded = decode(bytes).unwrap();
            assert_eq!(decoded, action_orgs_fixture_challenge(), "{name}");
            assert_eq!(encode(&decoded), bytes, "{name}");
        }
    }

    /// Writes the format-7 fixture once, when the format is introduced:
    /// `cargo test --lib write_format_7_fixture -- --ignored`.
    #[test]
    #[ignore]
    fn write_format_7_fixture() {
        std::fs::write(
            concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/fixtures/snapshot-format-7-action-orgs.bin"
            ),
            encode(&action_orgs_fixture_challenge()),
        )
        .unwrap();
    }

    /// The action fixture with two actors, each of an organisation, the second of whom
    /// answered.
    fn action_orgs_fixture_challenge() -> Challenge {
        let mut c = fixture_challenges()
            .into_iter()
            .map(|(_, c)| c)
            .find(|c| c.actions().is_some())
            .expect("an action fixture");
        let mut second = c.actors[0].clone();
        second.id = crate::model::ActorId::from_bytes([41; 16]);
        second.user_id = "bob".into();
        second.token_hash = TokenHash([42; 32]);
        c.actors.truncate(1);
        c.actors.push(second);
        c.life.answered_by = Some(1);
        c.actions_mut().unwrap().actor_orgs = vec!["org-a".into(), "org-b".into()];
        c
    }

    #[test]
    fn actor_organisations_without_an_action_plan_are_a_format_error() {
        let c = methods_fixture_challenge();
        let mut record = v7::ChallengeRecord::from(&c);
        record.extras.as_mut().unwrap().actor_orgs = vec!["org-a".into()];
        let mut bytes = vec![FORMAT_VERSION];
        bincode::serialize_into(&mut bytes, &record).unwrap();
        assert!(matches!(decode(&bytes), Err(StoreError::Format(_))));
    }

    /// Writes the format-6 fixture once, when the format is introduced:
    /// `cargo test --lib write_format_6_fixture -- --ignored`.
    #[test]
    #[ignore]
    fn write_format_6_fixture() {
        std::fs::write(
            concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/fixtures/snapshot-format-6-methods.bin"
            ),
            encode(&methods_fixture_challenge()),
        )
        .unwrap();
    }

    /// A challenge that offers three methods: an SMS code (started, one wrong answer),
    /// an email code (not started) and a TOTP factor (the winner).
    fn methods_fixture_challenge() -> Challenge {
        use crate::model::{Method, MethodId, MethodState};
        let delivery = match &fixture_challenges()[2].1.extras().kind {
            KindData::Delivery(plan) => plan.clone(),
            _ => unreachable!("the third fixture is a delivery challenge"),
        };
        let mut c = totp_fixture_challenge();
        c.kind = ChallengeType::SmsOtp;
        c.life.state = State::Verified;
        c.life.answered_by = Some(0);
        c.life.answered_at = Some(c.life.updated_at);
        let extras = c.extras.as_mut().unwrap();
        extras.kind = KindData::None;
        extras.methods = vec![
            Method {
                id: MethodId::from_bytes([31; 16]),
                kind: ChallengeType::SmsOtp,
                state: MethodState::Failed,
                attempts: 3,
                max_attempts: 3,
                started_at: Some(1_700_000_001_000),
                hashes: vec![TokenHash([32; 32])],
                data: KindData::Delivery(delivery.clone()),
            },
            Method {
                id: MethodId::from_bytes([33; 16]),
                kind: ChallengeType::EmailOtp,
                state: MethodState::Open,
                attempts: 0,
                max_attempts: 3,
                started_at: None,
                hashes: vec![TokenHash([34; 32])],
                data: KindData::Delivery(crate::model::DeliveryPlan {
                    channel: crate::model::DeliveryChannel::Email,
                    ..delivery
                }),
            },
            Method {
                id: MethodId::from_bytes([35; 16]),
                kind: ChallengeType::Totp,
                state: MethodState::Verified,
                attempts: 1,
                max_attempts: 3,
                started_at: Some(1_700_000_000_000),
                hashes: vec![TokenHash([36; 32])],
                data: KindData::Factor(FactorId::from_bytes([37; 16])),
            },
        ];
        c
    }

    #[test]
    fn a_method_with_both_a_delivery_and_a_factor_is_a_format_error() {
        let c = methods_fixture_challenge();
        let mut record = v6::ChallengeRecord::from(&c);
        let methods = &mut record.extras.as_mut().unwrap().methods;
        methods[2].delivery = methods[0].delivery.clone();
        let mut bytes = vec![6];
        bincode::serialize_into(&mut bytes, &record).unwrap();
        assert!(matches!(decode(&bytes), Err(StoreError::Format(_))));
    }

    /// Writes the format-5 fixture once, when the format is introduced:
    /// `cargo test --lib write_format_5_fixture -- --ignored`.
    #[test]
    #[ignore]
    fn write_format_5_fixture() {
        std::fs::write(
            concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/fixtures/snapshot-format-5-webauthn.bin"
            ),
            encode(&webauthn_fixture_challenge()),
        )
        .unwrap();
    }

    /// A `webauthn` challenge (format 5 on): its ceremony in the extras.
    fn webauthn_fixture_challenge() -> Challenge {
        let mut c = totp_fixture_challenge();
        c.kind = ChallengeType::Webauthn;
        c.extras.as_mut().unwrap().kind = KindData::Webauthn(crate::model::WebauthnPlan {
            relying_party: "localhost".into(),
            credentials: vec![(FactorId::from_bytes([20; 16]), vec![21, 22, 23])],
            options: r#"{"publicKey":{"challenge":"AAAA","rpId":"localhost"}}"#.into(),
            state: r#"{"ast":{}}"#.into(),
        });
        c
    }

    #[test]
    fn a_ceremony_beside_a_factor_is_a_format_error() {
        let c = webauthn_fixture_challenge();
        let mut record = v5::ChallengeRecord::from(&c);
        record.extras.as_mut().unwrap().base.factor = Some([1; 16]);
        let mut bytes = vec![5];
        bincode::serialize_into(&mut bytes, &record).unwrap();
        assert!(matches!(decode(&bytes), Err(StoreError::Format(_))));
    }

    /// A `push` challenge needs no format of its own: its factor and its details are
    /// what format 4 already keeps (and format 5 after it).
    #[test]
    fn a_push_challenge_round_trips() {
        let mut c = totp_fixture_challenge();
        c.kind = ChallengeType::Push;
        c.extras.as_mut().unwrap().details =
            Some(r#"{"message":"Approve login?","fields":[{"label":"IP","value":"x"}]}"#.into());
        let bytes = encode(&c);
        assert_eq!(bytes[0], FORMAT_VERSION);
        assert_eq!(decode(&bytes).unwrap(), c);
    }

    #[test]
    fn a_factor_beside_another_kinds_plan_is_a_format_error() {
        let mut c = fixture_challenges()[1].1.clone();
        let mut record = v4::ChallengeRecord::from(&c);
        record.extras.as_mut().unwrap().factor = Some([1; 16]);
        let mut bytes = vec![4];
        bincode::serialize_into(&mut bytes, &record).unwrap();
        assert!(matches!(decode(&bytes), Err(StoreError::Format(_))));
        c.extras.as_mut().unwrap().kind = KindData::Factor(FactorId::from_bytes([1; 16]));
        assert_eq!(decode(&encode(&c)).unwrap(), c);
    }

    /// A `totp` challenge (format 4 on): answered with the user's enrolled factor.
    fn totp_fixture_challenge() -> Challenge {
        Challenge {
            id: ChallengeId::from_bytes([16; 16]),
            tenant: TenantId::parse("acme").unwrap(),
            kind: ChallengeType::Totp,
            user_id: "u-4".into(),
            actors: vec![ActorRecord {
                id: ActorId::from_bytes([17; 16]),
                user_id: "u-4".into(),
                token_hash: TokenHash([18; 32]),
            }],
            created_at: 1_700_000_000_000,
            life: Lifecycle {
                state: State::Issued,
                expires_at: 1_700_000_300_000,
                updated_at: 1_700_000_005_000,
                max_attempts: 5,
                attempts: 2,
                answered_by: None,
                answered_at: None,
            },
            retention_ms: 86_400_000,
            extras: Extras {
                kind: KindData::Factor(FactorId::from_bytes([19; 16])),
                ..Extras::default()
            }
            .boxed(),
        }
    }

    #[test]
    fn record_enums_are_written_as_their_discriminants() {
        fn written<T: serde::Serialize>(v: &T) -> u32 {
            let bytes = bincode::serialize(v).unwrap();
            u32::from_le_bytes(bytes.try_into().unwrap())
        }
        use v3::*;
        for v in [
            ChallengeTypeRecord::Token,
            ChallengeTypeRecord::EmailOtp,
            ChallengeTypeRecord::SmsOtp,
            ChallengeTypeRecord::EmailLink,
            ChallengeTypeRecord::Totp,
            ChallengeTypeRecord::Webauthn,
            ChallengeTypeRecord::Push,
            ChallengeTypeRecord::OneTimeUseAction,
        ] {
            assert_eq!(written(&v), v as u32, "{v:?}");
        }
        for v in [
            StateRecord::Issued,
            StateRecord::Verified,
            StateRecord::Completed,
            StateRecord::Declined,
            StateRecord::Failed,
            StateRecord::Cancelled,
            StateRecord::Expired,
            StateRecord::Pending,
        ] {
            assert_eq!(written(&v), v as u32, "{v:?}");
        }
        for v in [ActionSetRecord::Approved, ActionSetRecord::Declined] {
            assert_eq!(written(&v), v as u32, "{v:?}");
        }
        for v in [
            ActionStatusRecord::Pending,
            ActionStatusRecord::Succeeded,
            ActionStatusRecord::Failed,
        ] {
            assert_eq!(written(&v), v as u32, "{v:?}");
        }
        for v in [DeliveryChannelRecord::Email, DeliveryChannelRecord::Sms] {
            assert_eq!(written(&v), v as u32, "{v:?}");
        }
        for v in [CodeAlphabetRecord::Digits, CodeAlphabetRecord::Alphanumeric] {
            assert_eq!(written(&v), v as u32, "{v:?}");
        }
        for v in [ResendModeRecord::Same, ResendModeRecord::Rotate] {
            assert_eq!(written(&v), v as u32, "{v:?}");
        }
        for v in [
            v6::MethodStateRecord::Open,
            v6::MethodStateRecord::Verified,
            v6::MethodStateRecord::Declined,
            v6::MethodStateRecord::Failed,
        ] {
            assert_eq!(written(&v), v as u32, "{v:?}");
        }
        for v in [
            DeliveryStatusRecord::NotSent,
            DeliveryStatusRecord::Pending,
            DeliveryStatusRecord::Sent,
            DeliveryStatusRecord::Failed,
        ] {
            assert_eq!(written(&v), v as u32, "{v:?}");
        }
    }

    /// The challenges of the fixture files, one per file: every part of a snapshot is
    /// covered by at least one of them.
    fn fixture_challenges() -> [(&'static str, Challenge); 3] {
        let tenant = TenantId::parse("acme").unwrap();
        let token = Challenge {
            id: ChallengeId::from_bytes([1; 16]),
            tenant: tenant.clone(),
            kind: ChallengeType::Token,
            user_id: "u-1".into(),
            actors: vec![ActorRecord {
                id: ActorId::from_bytes([2; 16]),
                user_id: "u-1".into(),
                token_hash: TokenHash([3; 32]),
            }],
            created_at: 1_700_000_000_000,
            life: Lifecycle::issued(1_700_000_000_000, 1_700_000_060_000, 5),
            retention_ms: 86_400_000,
            extras: None,
        };
        let action = Challenge {
            id: ChallengeId::from_bytes([4; 16]),
            tenant: tenant.clone(),
            kind: ChallengeType::OneTimeUseAction,
            user_id: "u-2".into(),
            actors: vec![
                ActorRecord {
                    id: ActorId::from_bytes([5; 16]),
                    user_id: "u-2".into(),
                    token_hash: TokenHash([6; 32]),
                },
                ActorRecord {
                    id: ActorId::from_bytes([7; 16]),
                    user_id: "approver".into(),
                    token_hash: TokenHash([8; 32]),
                },
            ],
            created_at: 1_700_000_000_000,
            life: Lifecycle {
                state: State::Verified,
                expires_at: 1_700_000_300_000,
                updated_at: 1_700_000_010_000,
                max_attempts: 3,
                attempts: 1,
                answered_by: Some(1),
                answered_at: Some(1_700_000_010_000),
            },
            retention_ms: 3_600_000,
            extras: Extras {
                details: Some(r#"{"message":"Approve the transfer?"}"#.into()),
                hidden_details: Some(r#"{"transfer":"t-9"}"#.into()),
                callback_url: Some("https://caller.example/hooks".into()),
                idempotency: Some(Idempotency {
                    key: "req-42".into(),
                    request_hash: [9; 32],
                }),
                kind: KindData::Actions(ActionPlan {
                    approved: vec![
                        HttpAction {
                            method: "POST".into(),
                            uri: "https://bank.example/transfers/t-9/release".into(),
                            content_type: Some("application/json".into()),
                            body: Some(r#"{"ok":true}"#.into()),
                            scopes: vec!["transfers:release".into()],
                        },
                        HttpAction {
                            method: "GET".into(),
                            uri: "https://bank.example/ping".into(),
                            content_type: None,
                            body: None,
                            scopes: vec![],
                        },
                    ],
                    declined: vec![HttpAction {
                        method: "DELETE".into(),
                        uri: "https://bank.example/transfers/t-9".into(),
                        content_type: None,
                        body: None,
                        scopes: vec!["transfers:cancel".into(), "audit".into()],
                    }],
                    chosen: Some(ActionSet::Approved),
                    results: vec![
                        ActionResult {
                            status: ActionStatus::Succeeded,
                            attempts: 1,
                            status_code: Some(204),
                            last_error: None,
                            finished_at: Some(1_700_000_011_000),
                        },
                        ActionResult {
                            status: ActionStatus::Pending,
                            attempts: 2,
                            status_code: Some(503),
                            last_error: Some("503 Service Unavailable".into()),
                            finished_at: None,
                        },
                    ],
                    actor_orgs: vec![],
                }),
                policy: Some(PolicyRef {
                    alias: PolicyAlias::parse("transfer-approval").unwrap(),
                    version: 7,
                }),
                methods: Vec::new(),
            }
            .boxed(),
        };
        let delivery = Challenge {
            id: ChallengeId::from_bytes([10; 16]),
            tenant,
            kind: ChallengeType::EmailOtp,
            user_id: "u-3".into(),
            actors: vec![
                ActorRecord {
                    id: ActorId::from_bytes([11; 16]),
                    user_id: "u-3".into(),
                    token_hash: TokenHash([12; 32]),
                },
                ActorRecord {
                    id: ActorId::from_bytes([13; 16]),
                    user_id: "u-3-backup".into(),
                    token_hash: TokenHash([14; 32]),
                },
            ],
            created_at: 1_700_000_000_000,
            life: Lifecycle {
                state: State::Expired,
                expires_at: 1_700_000_600_000,
                updated_at: 1_700_000_600_000,
                max_attempts: 5,
                attempts: 4,
                answered_by: None,
                answered_at: None,
            },
            retention_ms: 600_000,
            extras: Extras {
                idempotency: Some(Idempotency {
                    key: "login-7".into(),
                    request_hash: [15; 32],
                }),
                kind: KindData::Delivery(DeliveryPlan {
                    channel: DeliveryChannel::Email,
                    locale: Some("fr-CA".into()),
                    code_length: 8,
                    code_alphabet: Alphabet::Alphanumeric,
                    resend_cooldown_seconds: 30,
                    max_resends: 3,
                    resend_mode: ResendMode::Rotate,
                    templates: Some(
                        r#"{"default_locale":"fr-CA","locales":{"fr-CA":{"subject":"Code"}}}"#
                            .into(),
                    ),
                    resends: 1,
                    last_sent_at: Some(1_700_000_030_000),
                    actors: vec![
                        ActorDelivery {
                            recipient: "u3@example.com".into(),
                            status: DeliveryStatus::Sent,
                            attempts: 1,
                            last_error: None,
                            sent_at: Some(1_700_000_030_000),
                        },
                        ActorDelivery {
                            recipient: "backup@example.com".into(),
                            status: DeliveryStatus::Failed,
                            attempts: 3,
                            last_error: Some("550 mailbox unavailable".into()),
                            sent_at: None,
                        },
                    ],
                }),
                policy: Some(PolicyRef {
                    alias: PolicyAlias::parse("login").unwrap(),
                    version: 2,
                }),
                ..Extras::default()
            }
            .boxed(),
        };
        [("token", token), ("action", action), ("delivery", delivery)]
    }
}
