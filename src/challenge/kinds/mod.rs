//! Per-kind rules behind one trait, [`Kind`]: which request fields and policy fields a
//! kind takes, how a create is planned from request and policy, which secrets it
//! issues, whether and how it is delivered, and how a presented answer becomes a
//! [`Verdict`]. One file per kind; [`of`] is the one place that lists them. Pure rules
//! over the request, the challenge record and the server's hashing key: nothing here
//! saves, and nothing sends (the actor sends what `delivered` renders).
//!
//! Adding a kind: a file with a unit struct implementing [`Kind`], its variant in
//! `model::ChallengeType`, and its line in [`of`].

pub mod action;
pub mod code;
pub mod delivered;
pub mod link;
pub mod push;
pub mod token;
pub mod totp;
pub mod webauthn;

use std::sync::Arc;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use self::token::{Attempt, AttemptError};
use super::messages::ChallengeError;
use super::state::Verdict;
use crate::clock::Millis;
use crate::engine::{CreateRequest, Error};
use crate::model::{
    AnswerToken, Challenge, ChallengeType, DeliveryChannel, PolicySpec, Properties, TokenHash,
};

/// The rules of one kind. Every method but [`Kind::judge`] has the answer of a kind
/// that is not delivered and takes nothing beyond the common fields.
pub trait Kind: Sync {
    /// Whether and how the server delivers it; `None`: the caller hands each actor its
    /// answer token.
    fn delivery(&self) -> Option<Delivery> {
        None
    }

    /// Whether, as one of several methods of a challenge (`model::method`), it waits to
    /// be started: a delivered kind sends its secret then; one that needs no start is
    /// answerable from the create on.
    fn starts_on_demand(&self) -> bool {
        self.delivery().is_some()
    }

    /// Whether a create request may give `field`.
    fn accepts(&self, field: Field) -> bool {
        match field {
            Field::Actors => true,
            Field::Recipient | Field::Send | Field::Locale => self.delivery().is_some(),
            Field::Actions | Field::Factor => false,
        }
    }

    /// Whether a create request must give `field`: [`Kind::plan`] refuses a request
    /// without it. A delivered kind needs a recipient for each actor (one for the
    /// request, or one per actor).
    fn requires(&self, field: Field) -> bool {
        field == Field::Recipient && self.delivery().is_some()
    }

    /// The bounds of a request's `details` and `hidden_details` for this kind.
    fn detail_bounds(&self) -> DetailBounds {
        DetailBounds::COMMON
    }

    /// Whether a policy for this kind may set `field`.
    fn policy_applies(&self, field: PolicyField) -> bool {
        let Some(delivery) = self.delivery() else {
            return false;
        };
        match field {
            PolicyField::CodeLength | PolicyField::CodeAlphabet => {
                delivery.secret == SecretForm::Code
            }
            PolicyField::ResendCooldownSeconds
            | PolicyField::MaxResends
            | PolicyField::ResendMode
            | PolicyField::Templates
            | PolicyField::Conditions => true,
            PolicyField::EmailTemplates | PolicyField::EmailDomains => {
                delivery.channel == DeliveryChannel::Email
            }
            PolicyField::SmsTemplate | PolicyField::PhonePrefixes => {
                delivery.channel == DeliveryChannel::Sms
            }
            PolicyField::ActionScopes => false,
        }
    }

    /// What this kind adds to a new challenge, from the request and its policy. Runs
    /// after the engine checked which fields the kind accepts.
    fn plan(
        &self,
        _request: &CreateRequest,
        _policy: Option<&PolicySpec>,
        _ctx: &PlanContext<'_>,
    ) -> Result<KindPlan, Error> {
        Ok(KindPlan::default())
    }

    /// The secrets of the assembled challenge. `tokens` are the actors' answer tokens,
    /// whose hashes the actors hold; a kind that delivers its own secrets replaces
    /// those hashes and returns what its first messages carry instead.
    fn issue(
        &self,
        _challenge: &mut Challenge,
        tokens: Vec<AnswerToken>,
        _ctx: &PlanContext<'_>,
    ) -> Result<Secrets, Error> {
        Ok(Secrets::AnswerTokens(tokens))
    }

    /// The factor type whose verified factors answer a challenge of this kind that
    /// names none: the engine reads the user's factors for [`Kind::plan`]
    /// ([`PlanContext::user_factors`]).
    fn user_factors(&self) -> Option<crate::factors::FactorType> {
        None
    }

    /// What the kind announces of a new challenge once it is durable: the body the
    /// server POSTs to the push gateway (`[push] gateway_url`), if any. `factor` is the
    /// one the challenge names.
    fn announce(
        &self,
        _challenge: &Challenge,
        _factor: &crate::factors::Factor,
    ) -> Option<serde_json::Value> {
        None
    }

    /// Turns a presented answer into a verdict: constant-time, no side effects.
    fn judge(
        &self,
        key: &HashKey,
        challenge: &Challenge,
        attempt: &Attempt,
    ) -> Result<Verdict, AttemptError>;

    /// What the actor asks: the verdict with the services at hand. A kind whose verdict
    /// depends on more than the challenge record (an enrolled factor's state) overrides
    /// this, and may record in the store what an accepted answer uses up — before the
    /// verdict is final, and made durable by the flush of the challenge's own change.
    fn judge_in(
        &self,
        services: &super::Services,
        challenge: &Challenge,
        attempt: &Attempt,
        _now: Millis,
    ) -> Result<Verdict, ChallengeError> {
        self.judge(&services.key, challenge, attempt)
            .map_err(ChallengeError::Attempt)
    }
}

/// The rules of `kind`; `None` for a kind not enabled on this server.
pub fn of(kind: ChallengeType) -> Option<&'static dyn Kind> {
    match kind {
        ChallengeType::Token => Some(&token::Token),
        ChallengeType::OneTimeUseAction => Some(&action::OneTimeUseAction),
        ChallengeType::EmailOtp => Some(&code::EMAIL_OTP),
        ChallengeType::SmsOtp => Some(&code::SMS_OTP),
        ChallengeType::EmailLink => Some(&link::EmailLink),
        ChallengeType::Totp => Some(&totp::Totp),
        ChallengeType::Push => Some(&push::Push),
        ChallengeType::Webauthn => Some(&webauthn::Webauthn),
    }
}

/// How a delivered kind reaches its actors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivery {
    pub channel: DeliveryChannel,
    pub secret: SecretForm,
}

/// What a delivered message carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretForm {
    /// A one-time code the user types (the calling service relays it).
    Code,
    /// A link to the answer page, carrying an answer token.
    Link,
}

/// What `details` and `hidden_details` may hold (README.md, "Limits"): lengths in
/// characters, `hidden` in bytes of its JSON encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DetailBounds {
    /// `details.message` must be given.
    pub message_required: bool,
    pub message: usize,
    pub fields: usize,
    pub label: usize,
    pub value: usize,
    pub hidden: usize,
}

impl DetailBounds {
    /// Every kind's, unless it says otherwise.
    pub const COMMON: DetailBounds = {
        use crate::engine::input::*;
        DetailBounds {
            message_required: false,
            message: MAX_MESSAGE,
            fields: MAX_FIELDS,
            label: MAX_LABEL,
            value: MAX_VALUE,
            hidden: MAX_HIDDEN_DETAILS,
        }
    };
}

/// Fields of a create request that only some kinds take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// `actors`: who answers, when not only `user_id`.
    Actors,
    Recipient,
    Send,
    Locale,
    Actions,
    /// `factor_id`: the enrolled factor that answers it.
    Factor,
}

impl Field {
    pub fn name(self) -> &'static str {
        match self {
            Field::Actors => "actors",
            Field::Recipient => "recipient",
            Field::Send => "send",
            Field::Locale => "locale",
            Field::Actions => "actions",
            Field::Factor => "factor_id",
        }
    }
}

/// Fields of a policy that only some kinds take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyField {
    CodeLength,
    CodeAlphabet,
    ResendCooldownSeconds,
    MaxResends,
    ResendMode,
    Templates,
    /// A template's `subject`, `text` and `html`.
    EmailTemplates,
    /// A template's `sms`.
    SmsTemplate,
    Conditions,
    EmailDomains,
    PhonePrefixes,
    /// `allowed_action_scopes`.
    ActionScopes,
}

/// What a create is planned with besides the request and the policy.
pub struct PlanContext<'a> {
    pub services: &'a super::Services,
    pub actions: &'a crate::config::ActionSettings,
    /// The tenant's configuration in effect.
    pub config: &'a Properties,
    pub now: Millis,
    /// The user's factor the request names (`factor_id`), if it exists.
    pub factor: Option<&'a crate::factors::Factor>,
    /// The user's factors of the kind's [`Kind::user_factors`] type, when the request
    /// names none; empty otherwise.
    pub user_factors: &'a [crate::factors::Factor],
    pub tenant: &'a crate::model::TenantId,
}

/// The factor a create names with `factor_id`, when it is a verified factor of `kind`:
/// `404 factor_not_found` if the user has no such factor, `400 factor_type_mismatch`
/// for another type, `409 factor_not_verified` before its enrollment is verified.
pub fn named_factor<'a>(
    ctx: &PlanContext<'a>,
    kind: crate::factors::FactorType,
) -> Result<&'a crate::factors::Factor, Error> {
    let factor = ctx.factor.ok_or(Error::FactorNotFound)?;
    if factor.kind() != kind {
        return Err(Error::invalid(
            "factor_type_mismatch",
            format!(
                "factor_id names a {} factor; {kind} challenges need a {kind} factor",
                factor.kind().as_str(),
                kind = kind.as_str(),
            ),
        ));
    }
    if factor.status != crate::factors::FactorStatus::Verified {
        return Err(Error::conflict(
            "factor_not_verified",
            "the factor's enrollment has not been verified",
        ));
    }
    Ok(factor)
}

/// The kind's part of a new challenge record.
pub type KindPlan = crate::model::KindData;

/// The secrets a new challenge issues.
pub enum Secrets {
    /// Shown once, to the caller, in actor order.
    AnswerTokens(Vec<AnswerToken>),
    /// Sent to the recipients only: the caller never sees them.
    Delivered(delivered::Prepared),
}

/// The server key for keyed hashes of answer tokens and codes (HMAC-SHA256). Only the
/// hash is stored; comparisons are constant-time.
#[derive(Clone)]
pub struct HashKey(Arc<[u8; 32]>);

impl HashKey {
    pub fn new(key: [u8; 32]) -> Self {
        HashKey(Arc::new(key))
    }

    pub fn hash(&self, secret: &str) -> TokenHash {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0[..]).expect("any key length");
        mac.update(secret.as_bytes());
        TokenHash(mac.finalize().into_bytes().into())
    }

    pub fn matches(presented: &TokenHash, stored: &TokenHash) -> bool {
        presented.0.ct_eq(&stored.0).into()
    }
}

impl std::fmt::Debug for HashKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HashKey(***)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_delivered_kinds_take_recipients_and_only_actions_take_actions() {
        for (kind, delivered, actions) in [
            (ChallengeType::Token, false, false),
            (ChallengeType::OneTimeUseAction, false, true),
            (ChallengeType::EmailOtp, true, false),
            (ChallengeType::SmsOtp, true, false),
            (ChallengeType::EmailLink, true, false),
            (ChallengeType::Totp, false, false),
        ] {
            let rules = of(kind).expect("enabled");
            for field in [Field::Recipient, Field::Send, Field::Locale] {
                assert_eq!(rules.accepts(field), delivered, "{kind:?} {field:?}");
            }
            assert_eq!(rules.accepts(Field::Actions), actions, "{kind:?}");
        }
        let webauthn = of(ChallengeType::Webauthn).expect("enabled");
        assert!(webauthn.accepts(Field::Factor) && !webauthn.accepts(Field::Recipient));
        let push = of(ChallengeType::Push).expect("enabled");
        assert!(push.accepts(Field::Factor) && !push.accepts(Field::Recipient));
    }

    #[test]
    fn code_fields_apply_to_otp_and_channel_fields_to_their_channel() {
        let applies = |kind, field| of(kind).unwrap().policy_applies(field);
        use ChallengeType::*;
        use PolicyField::*;
        assert!(applies(EmailOtp, CodeLength) && applies(SmsOtp, CodeAlphabet));
        assert!(!applies(EmailLink, CodeLength) && !applies(Token, CodeLength));
        assert!(applies(EmailLink, Templates) && !applies(OneTimeUseAction, Templates));
        assert!(applies(EmailOtp, EmailDomains) && !applies(SmsOtp, EmailDomains));
        assert!(applies(SmsOtp, PhonePrefixes) && !applies(EmailLink, PhonePrefixes));
        assert!(applies(SmsOtp, SmsTemplate) && !applies(SmsOtp, EmailTemplates));
    }
}
