//! The challenge record: what a challenge actor owns and what a snapshot stores.

use serde::{Deserialize, Serialize};

use super::ids::{ActorId, ChallengeId, TenantId, TokenHash};
use super::policy::PolicyRef;
use crate::clock::Millis;

/// Every kind the model knows. Kinds whose rules have not been enabled answer
/// `type_not_enabled` at create.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ChallengeType {
    Token,
    EmailOtp,
    SmsOtp,
    EmailLink,
    Totp,
    Webauthn,
    Push,
    OneTimeUseAction,
}

impl ChallengeType {
    pub fn as_str(self) -> &'static str {
        match self {
            ChallengeType::Token => "token",
            ChallengeType::EmailOtp => "email_otp",
            ChallengeType::SmsOtp => "sms_otp",
            ChallengeType::EmailLink => "email_link",
            ChallengeType::Totp => "totp",
            ChallengeType::Webauthn => "webauthn",
            ChallengeType::Push => "push",
            ChallengeType::OneTimeUseAction => "one_time_use_action",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        serde_json::from_value(serde_json::Value::String(s.to_string())).ok()
    }
    pub fn is_enabled(self) -> bool {
        matches!(self, ChallengeType::Token)
    }
}

/// Native state names; see ARCHITECTURE.md's state machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum State {
    Issued,
    Verified,
    Completed,
    Declined,
    Failed,
    Cancelled,
    Expired,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Issued => "issued",
            State::Verified => "verified",
            State::Completed => "completed",
            State::Declined => "declined",
            State::Failed => "failed",
            State::Cancelled => "cancelled",
            State::Expired => "expired",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        serde_json::from_value(serde_json::Value::String(s.to_string())).ok()
    }
    /// Terminal states never change again; they are retained, then deleted.
    pub fn is_terminal(self) -> bool {
        !matches!(self, State::Issued | State::Verified)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Details {
    /// Shown to the user, e.g. "Approve login from Ottawa?"
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<DetailField>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DetailField {
    pub label: String,
    pub value: String,
}

/// One party who may answer, with the keyed hash of its answer token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActorRecord {
    pub id: ActorId,
    pub user_id: Box<str>,
    pub token_hash: TokenHash,
}

/// The idempotency key a challenge was created under and a hash of that request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Idempotency {
    pub key: Box<str>,
    pub request_hash: [u8; 32],
}

/// A challenge, whole: the actor's state and the snapshot's content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Challenge {
    pub id: ChallengeId,
    pub tenant: TenantId,
    pub kind: ChallengeType,
    pub user_id: Box<str>,
    pub actors: Vec<ActorRecord>,
    pub created_at: Millis,
    pub life: Lifecycle,
    pub retention_ms: i64,
    /// `details` and `hidden_details` as the JSON text they were given in (re-encoded).
    pub details: Option<Box<str>>,
    pub hidden_details: Option<Box<str>>,
    pub callback_url: Option<Box<str>>,
    pub idempotency: Option<Idempotency>,
    /// The policy (and its version) the challenge was created from; its TTL, attempts
    /// and retention were copied from it then.
    pub policy: Option<PolicyRef>,
}

/// The part of a challenge that the state machine (`challenge::state`) moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lifecycle {
    pub state: State,
    pub expires_at: Millis,
    /// When the state last changed; for a terminal challenge, when it ended.
    pub updated_at: Millis,
    pub max_attempts: u32,
    /// Wrong answers so far.
    pub attempts: u32,
    /// Index into the challenge's actors of who answered.
    pub answered_by: Option<u16>,
    pub answered_at: Option<Millis>,
}

impl Lifecycle {
    pub fn issued(now: Millis, expires_at: Millis, max_attempts: u32) -> Self {
        Lifecycle {
            state: State::Issued,
            expires_at,
            updated_at: now,
            max_attempts,
            attempts: 0,
            answered_by: None,
            answered_at: None,
        }
    }
    pub fn attempts_left(&self) -> u32 {
        self.max_attempts.saturating_sub(self.attempts)
    }
}

impl Challenge {
    pub fn state(&self) -> State {
        self.life.state
    }
    /// When a terminal challenge is deleted.
    pub fn delete_at(&self) -> Option<Millis> {
        self.life
            .state
            .is_terminal()
            .then_some(self.life.updated_at.saturating_add(self.retention_ms))
    }
}
