//! The challenge record: what a challenge actor owns and what a snapshot stores.

use serde::{Deserialize, Serialize};

use super::ids::{ActorId, ChallengeId, FactorId, TenantId, TokenHash};
use super::policy::PolicyRef;
pub use super::policy::{CodeAlphabet as Alphabet, ResendMode};
use crate::clock::Millis;

/// Every kind the model knows. Its rules are `challenge::kinds::of(kind)`; kinds
/// without rules answer `type_not_enabled` at create.
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
    pub const ALL: [ChallengeType; 8] = [
        ChallengeType::Token,
        ChallengeType::EmailOtp,
        ChallengeType::SmsOtp,
        ChallengeType::EmailLink,
        ChallengeType::Totp,
        ChallengeType::Webauthn,
        ChallengeType::Push,
        ChallengeType::OneTimeUseAction,
    ];

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
    /// Created unsent (`issue: false`, Agilicus `send_now=false`): nothing delivered, no
    /// answer taken, until it is issued.
    Pending,
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
            State::Pending => "pending",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        serde_json::from_value(serde_json::Value::String(s.to_string())).ok()
    }
    /// Terminal states never change again; they are retained, then deleted.
    pub fn is_terminal(self) -> bool {
        !matches!(self, State::Pending | State::Issued | State::Verified)
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
    /// What many challenges do without, kept out of line: a challenge without any of it
    /// costs one pointer (a million live challenges are held in memory).
    pub extras: Option<Box<Extras>>,
}

/// The optional parts of a challenge.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Extras {
    /// `details` and `hidden_details` as the JSON text they were given in (re-encoded).
    pub details: Option<Box<str>>,
    pub hidden_details: Option<Box<str>>,
    pub callback_url: Option<Box<str>>,
    pub idempotency: Option<Idempotency>,
    /// What the challenge's kind keeps of its own.
    pub kind: KindData,
    /// The policy (and its version) the challenge was created from; its TTL, attempts
    /// and retention were copied from it then.
    pub policy: Option<PolicyRef>,
    /// The methods of a challenge that offers several ways to answer it (`methods` on
    /// create); empty for a challenge of one kind. See `model::method`.
    pub methods: Vec<super::Method>,
}

/// What a challenge without extras reads (a `static`: `Extras` owns a `Vec`).
static NO_EXTRAS: Extras = Extras::NONE;

impl Extras {
    const NONE: Extras = Extras {
        details: None,
        hidden_details: None,
        callback_url: None,
        idempotency: None,
        kind: KindData::None,
        policy: None,
        methods: Vec::new(),
    };

    /// `None` when there is nothing to keep.
    pub fn boxed(self) -> Option<Box<Extras>> {
        (self != Extras::NONE).then(|| Box::new(self))
    }
}

/// What a challenge's kind keeps beside what every challenge has: one variant per kind
/// that keeps anything (a kind's rules in `challenge::kinds` say which it plans).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum KindData {
    /// The kind keeps nothing of its own (`token`).
    #[default]
    None,
    /// `one_time_use_action`: the requests to make when answered, and their results.
    Actions(ActionPlan),
    /// The delivery kinds (`email_otp`, `sms_otp`, `email_link`): how the challenge
    /// reaches its actors and where each delivery stands.
    Delivery(DeliveryPlan),
    /// `totp`, `push`: the user's enrolled factor that answers it.
    Factor(FactorId),
    /// `webauthn`: the authentication ceremony it runs.
    Webauthn(WebauthnPlan),
}

/// A `webauthn` challenge's ceremony, fixed at create: the relying party, the allowed
/// credentials and the factors they belong to, the request options the client is
/// given, and the relying-party crate's state that judges the assertion.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebauthnPlan {
    pub relying_party: Box<str>,
    /// (factor, credential id) of every allowed credential.
    pub credentials: Vec<(FactorId, Vec<u8>)>,
    /// `{"publicKey": …}` for `navigator.credentials.get`, JSON text.
    pub options: Box<str>,
    /// The crate's `PasskeyAuthentication`, JSON text.
    pub state: Box<str>,
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
    /// Created unsent: `pending` until issued.
    pub fn pending(now: Millis, expires_at: Millis, max_attempts: u32) -> Self {
        Lifecycle {
            state: State::Pending,
            ..Self::issued(now, expires_at, max_attempts)
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
    pub fn extras(&self) -> &Extras {
        self.extras.as_deref().unwrap_or(&NO_EXTRAS)
    }
    pub fn details(&self) -> Option<&str> {
        self.extras().details.as_deref()
    }
    pub fn hidden_details(&self) -> Option<&str> {
        self.extras().hidden_details.as_deref()
    }
    pub fn callback_url(&self) -> Option<&str> {
        self.extras().callback_url.as_deref()
    }
    pub fn idempotency(&self) -> Option<&Idempotency> {
        self.extras().idempotency.as_ref()
    }
    pub fn actions(&self) -> Option<&ActionPlan> {
        match &self.extras().kind {
            KindData::Actions(plan) => Some(plan),
            _ => None,
        }
    }
    pub fn actions_mut(&mut self) -> Option<&mut ActionPlan> {
        match &mut self.extras.as_deref_mut()?.kind {
            KindData::Actions(plan) => Some(plan),
            _ => None,
        }
    }
    /// The enrolled factor that answers it (`totp`).
    pub fn factor(&self) -> Option<FactorId> {
        match &self.extras().kind {
            KindData::Factor(id) => Some(*id),
            _ => None,
        }
    }
    /// The authentication ceremony (`webauthn`).
    pub fn webauthn(&self) -> Option<&WebauthnPlan> {
        match &self.extras().kind {
            KindData::Webauthn(plan) => Some(plan),
            _ => None,
        }
    }
    /// The methods it offers; empty for a challenge of one kind.
    pub fn methods(&self) -> &[super::Method] {
        &self.extras().methods
    }
    pub fn methods_mut(&mut self) -> Option<&mut Vec<super::Method>> {
        self.extras.as_deref_mut().map(|e| &mut e.methods)
    }
    pub fn policy(&self) -> Option<&PolicyRef> {
        self.extras().policy.as_ref()
    }
    pub fn delivery(&self) -> Option<&DeliveryPlan> {
        match &self.extras().kind {
            KindData::Delivery(plan) => Some(plan),
            _ => None,
        }
    }
    pub fn delivery_mut(&mut self) -> Option<&mut DeliveryPlan> {
        match &mut self.extras.as_deref_mut()?.kind {
            KindData::Delivery(plan) => Some(plan),
            _ => None,
        }
    }
    /// When a terminal challenge is deleted.
    pub fn delete_at(&self) -> Option<Millis> {
        self.life
            .state
            .is_terminal()
            .then_some(self.life.updated_at.saturating_add(self.retention_ms))
    }
}

/// One HTTP request a one-time-use action challenge makes when answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpAction {
    pub method: Box<str>,
    pub uri: Box<str>,
    pub content_type: Option<Box<str>>,
    pub body: Option<Box<str>>,
    /// Scopes of the short-lived token sent as `Authorization: Bearer`; empty: no token.
    pub scopes: Vec<Box<str>>,
}

/// Which list of actions an answer chose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ActionSet {
    Approved,
    Declined,
}

impl ActionSet {
    pub fn as_str(self) -> &'static str {
        match self {
            ActionSet::Approved => "approved",
            ActionSet::Declined => "declined",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ActionStatus {
    /// Not finished: runs (again, after a restart) until it succeeds or fails for good.
    Pending,
    Succeeded,
    Failed,
}

/// The outcome of one action of the chosen list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActionResult {
    pub status: ActionStatus,
    pub attempts: u32,
    pub status_code: Option<u16>,
    pub last_error: Option<Box<str>>,
    pub finished_at: Option<Millis>,
}

/// The actions of a one-time-use action challenge and, once answered, the results of
/// the list the answer chose. Fixed at create; only `chosen` and `results` change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActionPlan {
    pub approved: Vec<HttpAction>,
    pub declined: Vec<HttpAction>,
    pub chosen: Option<ActionSet>,
    pub results: Vec<ActionResult>,
    /// The organisation each actor acts for, in actor order; empty when none was named.
    pub actor_orgs: Vec<Box<str>>,
}

impl ActionPlan {
    pub fn list(&self, set: ActionSet) -> &[HttpAction] {
        match set {
            ActionSet::Approved => &self.approved,
            ActionSet::Declined => &self.declined,
        }
    }
}

/// How the server reaches an actor of a delivery challenge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryChannel {
    Email,
    Sms,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// Created with `send: false`: nothing goes out until a resend.
    NotSent,
    /// Being sent (or retried after a failed attempt).
    Pending,
    Sent,
    /// Every attempt failed; a resend tries again.
    Failed,
}

/// Delivery to one actor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActorDelivery {
    /// The email address or E.164 number.
    pub recipient: Box<str>,
    pub status: DeliveryStatus,
    /// Attempts of the current send.
    pub attempts: u32,
    pub last_error: Option<Box<str>>,
    pub sent_at: Option<Millis>,
}

/// How a delivery challenge reaches its actors, fixed at create (from its policy, else
/// the defaults), and where each delivery stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryPlan {
    pub channel: DeliveryChannel,
    pub locale: Option<Box<str>>,
    pub code_length: u8,
    pub code_alphabet: Alphabet,
    pub resend_cooldown_seconds: u32,
    pub max_resends: u32,
    pub resend_mode: ResendMode,
    /// The policy's template set, as JSON; `None`: the shipped templates.
    pub templates: Option<Box<str>>,
    pub resends: u32,
    pub last_sent_at: Option<Millis>,
    /// One per actor, in actor order.
    pub actors: Vec<ActorDelivery>,
}
