//! The ACS face's shapes (spec/onewelcome-acs.md, "Challenge object"): the native
//! shapes with camelCase fields and upper-case enums. Each request shape translates into
//! the native request and each response is made from the native one, so the meaning of
//! every field — bounds, defaults, what a read shows — is the native API's.
//!
//! Type names: ACS names `EMAIL_OTP`, `SMS_OTP`, `EMAIL_LINK` and `TOKEN`, the only
//! types this face creates (and writes into policies). A challenge or policy of another
//! type, made through `/api/v1`, still reads here, its type upper-cased (`TOTP`, `PUSH`,
//! `WEBAUTHN`, `ONE_TIME_USE_ACTION`), with the common fields only.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::api::native::dto::{
    ActorSpec, AnonymousAnswerDto, AnswerRequest, ChallengeDto, CreateChallenge, Recipient,
};
use crate::api::ApiError;
use crate::clock::rfc3339;
use crate::engine::policies::parse_alias;
use crate::model::policy::{CodeAlphabet, Conditions, ResendMode, Template, Templates};
use crate::model::{ChallengeType, Details, Policy, PolicySpec, Properties, State, TenantConfig};

/// The types ACS names: the only ones this face creates.
pub const ACS_TYPES: &[ChallengeType] = &[
    ChallengeType::EmailOtp,
    ChallengeType::SmsOtp,
    ChallengeType::EmailLink,
    ChallengeType::Token,
];

/// A type's ACS name.
pub fn type_name(kind: ChallengeType) -> &'static str {
    match kind {
        ChallengeType::EmailOtp => "EMAIL_OTP",
        ChallengeType::SmsOtp => "SMS_OTP",
        ChallengeType::EmailLink => "EMAIL_LINK",
        ChallengeType::Token => "TOKEN",
        // Not ACS types: read here in the same spelling, never created here.
        ChallengeType::Totp => "TOTP",
        ChallengeType::Webauthn => "WEBAUTHN",
        ChallengeType::Push => "PUSH",
        ChallengeType::OneTimeUseAction => "ONE_TIME_USE_ACTION",
    }
}

/// The type a request names in `field`: an ACS type; another type's name is
/// `type_not_supported`, anything else (`email_otp` included) `invalid_field`.
pub fn parse_type(field: &str, raw: &str) -> Result<ChallengeType, ApiError> {
    let kind = ChallengeType::parse(&raw.to_ascii_lowercase()).filter(|k| type_name(*k) == raw);
    match kind {
        Some(kind) if ACS_TYPES.contains(&kind) => Ok(kind),
        Some(_) => Err(ApiError::invalid(
            "type_not_supported",
            format!("{raw} challenges are not created through the ACS face; use /api/v1 for them"),
        )),
        None => Err(ApiError::invalid(
            "invalid_field",
            format!("{field} must be one of EMAIL_OTP, SMS_OTP, EMAIL_LINK, TOKEN"),
        )),
    }
}

/// A state's ACS name (the `status` field).
pub fn status_name(state: State) -> &'static str {
    match state {
        State::Issued => "ISSUED",
        State::Verified => "VERIFIED",
        State::Completed => "COMPLETED",
        State::Cancelled => "CANCELLED",
        State::Expired => "EXPIRED",
        State::Failed => "FAILED",
        // ACS has no approve/deny; a challenge declined through another face reads so.
        State::Declined => "DECLINED",
    }
}

/// The state an ACS status name names, exactly as spelled.
pub fn parse_status(raw: &str) -> Option<State> {
    State::parse(&raw.to_ascii_lowercase()).filter(|s| status_name(*s) == raw)
}

/// A native enum value upper-cased (`not_sent` → `NOT_SENT`).
fn upper<T: Serialize>(value: &T) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_ascii_uppercase))
        .unwrap_or_default()
}

/// `POST /compat/acs/v1/challenges`: the native create in ACS names, without the fields
/// of the types ACS does not name (`actions`, `factorId`).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AcsCreateChallenge {
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub policy_alias: Option<String>,
    pub user_id: String,
    pub actors: Option<Vec<AcsActorSpec>>,
    pub recipient: Option<Recipient>,
    pub ttl_seconds: Option<u64>,
    pub max_attempts: Option<u32>,
    pub details: Option<Details>,
    pub hidden_details: Option<serde_json::Map<String, serde_json::Value>>,
    pub callback_url: Option<String>,
    pub send: Option<bool>,
    pub locale: Option<String>,
    pub idempotency_key: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AcsActorSpec {
    pub user_id: String,
    pub recipient: Option<Recipient>,
}

impl AcsCreateChallenge {
    /// The native request. A challenge is created from a named policy (`policyAlias`),
    /// or from an explicit `type`.
    pub fn into_native(self) -> Result<CreateChallenge, ApiError> {
        let kind = self
            .kind
            .as_deref()
            .map(|t| parse_type("type", t))
            .transpose()?;
        let policy = self
            .policy_alias
            .map(|alias| parse_alias("policyAlias", &alias).map(|a| a.to_string()))
            .transpose()?;
        if kind.is_none() && policy.is_none() {
            return Err(ApiError::invalid(
                "invalid_field",
                "policyAlias is required unless type is given",
            ));
        }
        Ok(CreateChallenge {
            kind,
            policy,
            user_id: self.user_id,
            actors: self.actors.map(|actors| {
                actors
                    .into_iter()
                    .map(|a| ActorSpec {
                        user_id: a.user_id,
                        recipient: a.recipient,
                    })
                    .collect()
            }),
            recipient: self.recipient,
            ttl_seconds: self.ttl_seconds,
            max_attempts: self.max_attempts,
            details: self.details,
            hidden_details: self.hidden_details,
            callback_url: self.callback_url,
            actions: None,
            send: self.send,
            locale: self.locale,
            factor_id: None,
            idempotency_key: self.idempotency_key,
            // ACS names one way to answer a challenge: its type.
            methods: None,
        })
    }
}

/// `POST /compat/acs/v1/challenges/{id}/answer`: an OTP `code` or a token value
/// (`answerToken`), optionally naming the answering actor.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AcsAnswer {
    pub code: Option<String>,
    pub answer_token: Option<String>,
    pub actor_id: Option<String>,
}

impl AcsAnswer {
    pub fn into_native(self) -> AnswerRequest {
        AnswerRequest {
            answer_token: self.answer_token,
            allowed: None,
            code: self.code,
            actor_id: self.actor_id,
            credential: None,
            method_id: None,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AcsGetQuery {
    pub wait: Option<u64>,
    pub status: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AcsListQuery {
    pub user_id: Option<String>,
    pub status: Option<String>,
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub page_size: Option<usize>,
    pub page_token: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AcsActor {
    pub id: String,
    pub user_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub answer_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub answer_url: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AcsAnsweredBy {
    pub actor_id: String,
    pub user_id: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AcsDelivery {
    pub actor_id: String,
    /// `EMAIL` or `SMS`.
    pub channel: String,
    pub to: String,
    /// `NOT_SENT`, `PENDING`, `SENT`, `FAILED`.
    pub status: String,
    pub attempts: u32,
    pub last_error: Option<String>,
    pub sent_at: Option<String>,
}

/// A challenge in ACS names: the native read, renamed.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AcsChallenge {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub status: &'static str,
    pub user_id: String,
    pub policy_alias: Option<String>,
    pub policy_version: Option<u64>,
    pub created_at: String,
    pub updated_at: String,
    pub expires_at: String,
    pub max_attempts: u32,
    pub remaining_attempts: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remaining_resends: Option<u32>,
    pub actors: Vec<AcsActor>,
    pub details: Option<Box<RawValue>>,
    pub hidden_details: Option<Box<RawValue>>,
    pub callback_url: Option<String>,
    pub answered_by: Option<AcsAnsweredBy>,
    pub answered_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delivery: Option<Vec<AcsDelivery>>,
}

impl From<ChallengeDto> for AcsChallenge {
    fn from(dto: ChallengeDto) -> Self {
        // Every native field, so a new one is a decision here too.
        let ChallengeDto {
            id,
            kind,
            user_id,
            state,
            created_at,
            updated_at,
            expires_at,
            max_attempts,
            attempts_left,
            actors,
            details,
            hidden_details,
            callback_url,
            answered_by,
            answered_at,
            actions: _,
            delivery,
            resends_left,
            policy,
            webauthn: _,
            // A challenge of several methods (made natively) reads with the common
            // fields only, as one of a type ACS does not name does.
            methods: _,
        } = dto;
        AcsChallenge {
            id,
            kind: type_name(kind),
            status: status_name(state),
            user_id,
            policy_alias: policy.as_ref().map(|p| p.alias.to_string()),
            policy_version: policy.map(|p| p.version),
            created_at,
            updated_at,
            expires_at,
            max_attempts,
            remaining_attempts: attempts_left,
            remaining_resends: resends_left,
            actors: actors
                .into_iter()
                .map(|a| AcsActor {
                    id: a.id,
                    user_id: a.user_id,
                    answer_token: a.answer_token,
                    answer_url: a.answer_url,
                })
                .collect(),
            details,
            hidden_details,
            callback_url,
            answered_by: answered_by.map(|a| AcsAnsweredBy {
                actor_id: a.actor_id,
                user_id: a.user_id,
            }),
            answered_at,
            delivery: delivery.map(|list| {
                list.into_iter()
                    .map(|d| AcsDelivery {
                        actor_id: d.actor_id,
                        channel: upper(&d.channel),
                        to: d.to,
                        status: upper(&d.status),
                        attempts: d.attempts,
                        last_error: d.last_error,
                        sent_at: d.sent_at,
                    })
                    .collect()
            }),
        }
    }
}

/// What an anonymous answerer is told (as natively: nothing meant for the caller).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AcsAnonymousAnswer {
    pub id: String,
    pub status: &'static str,
    pub answered_at: Option<String>,
    pub answered_by: Option<AcsAnsweringActor>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AcsAnsweringActor {
    pub actor_id: String,
}

impl From<AnonymousAnswerDto> for AcsAnonymousAnswer {
    fn from(dto: AnonymousAnswerDto) -> Self {
        AcsAnonymousAnswer {
            id: dto.id,
            status: status_name(dto.state),
            answered_at: dto.answered_at,
            answered_by: dto.answered_by.map(|a| AcsAnsweringActor {
                actor_id: a.actor_id,
            }),
        }
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AcsChallengeList {
    pub challenges: Vec<AcsChallenge>,
    pub next_page_token: Option<String>,
}

/// `DIGITS` or `ALPHANUMERIC`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AcsCodeAlphabet {
    Digits,
    Alphanumeric,
}

impl From<AcsCodeAlphabet> for CodeAlphabet {
    fn from(a: AcsCodeAlphabet) -> Self {
        match a {
            AcsCodeAlphabet::Digits => CodeAlphabet::Digits,
            AcsCodeAlphabet::Alphanumeric => CodeAlphabet::Alphanumeric,
        }
    }
}

impl From<CodeAlphabet> for AcsCodeAlphabet {
    fn from(a: CodeAlphabet) -> Self {
        match a {
            CodeAlphabet::Digits => AcsCodeAlphabet::Digits,
            CodeAlphabet::Alphanumeric => AcsCodeAlphabet::Alphanumeric,
        }
    }
}

/// `SAME` or `ROTATE`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AcsResendMode {
    Same,
    Rotate,
}

impl From<AcsResendMode> for ResendMode {
    fn from(m: AcsResendMode) -> Self {
        match m {
            AcsResendMode::Same => ResendMode::Same,
            AcsResendMode::Rotate => ResendMode::Rotate,
        }
    }
}

impl From<ResendMode> for AcsResendMode {
    fn from(m: ResendMode) -> Self {
        match m {
            ResendMode::Same => AcsResendMode::Same,
            ResendMode::Rotate => AcsResendMode::Rotate,
        }
    }
}

/// Delivery templates per locale: `defaultLocale`, and `locales` whose texts are the
/// native ones (`subject`, `text`, `html`, `sms`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AcsTemplates {
    pub default_locale: String,
    pub locales: BTreeMap<String, Template>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AcsConditions {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email_domains: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone_prefixes: Option<Vec<String>>,
}

/// A policy's spec in ACS names; its `type` is checked by [`AcsPolicySpec::into_native`].
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AcsPolicySpec {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub ttl_seconds: Option<u64>,
    #[serde(default)]
    pub max_ttl_seconds: Option<u64>,
    #[serde(default)]
    pub max_attempts: Option<u32>,
    #[serde(default)]
    pub code_length: Option<u32>,
    #[serde(default)]
    pub code_alphabet: Option<AcsCodeAlphabet>,
    #[serde(default)]
    pub resend_cooldown_seconds: Option<u64>,
    #[serde(default)]
    pub max_resends: Option<u32>,
    #[serde(default)]
    pub resend_mode: Option<AcsResendMode>,
    #[serde(default)]
    pub retention_seconds: Option<u64>,
    #[serde(default)]
    pub one_active_per_user: bool,
    #[serde(default)]
    pub templates: Option<AcsTemplates>,
    #[serde(default)]
    pub conditions: Option<AcsConditions>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_action_scopes: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callback_url: Option<String>,
}

impl AcsPolicySpec {
    /// The native spec; only ACS types are written through this face.
    pub fn into_native(self) -> Result<PolicySpec, ApiError> {
        Ok(PolicySpec {
            kind: parse_type("type", &self.kind)?,
            ttl_seconds: self.ttl_seconds,
            max_ttl_seconds: self.max_ttl_seconds,
            max_attempts: self.max_attempts,
            code_length: self.code_length,
            code_alphabet: self.code_alphabet.map(Into::into),
            resend_cooldown_seconds: self.resend_cooldown_seconds,
            max_resends: self.max_resends,
            resend_mode: self.resend_mode.map(Into::into),
            retention_seconds: self.retention_seconds,
            one_active_per_user: self.one_active_per_user,
            templates: self.templates.map(|t| Templates {
                default_locale: t.default_locale,
                locales: t.locales,
            }),
            conditions: self.conditions.map(|c| Conditions {
                email_domains: c.email_domains,
                phone_prefixes: c.phone_prefixes,
            }),
            allowed_action_scopes: self.allowed_action_scopes,
            callback_url: self.callback_url,
        })
    }
}

impl From<&PolicySpec> for AcsPolicySpec {
    fn from(spec: &PolicySpec) -> Self {
        // Every native field, so a new one is a decision here too.
        let PolicySpec {
            kind,
            ttl_seconds,
            max_ttl_seconds,
            max_attempts,
            code_length,
            code_alphabet,
            resend_cooldown_seconds,
            max_resends,
            resend_mode,
            retention_seconds,
            one_active_per_user,
            templates,
            conditions,
            allowed_action_scopes,
            callback_url,
        } = spec.clone();
        AcsPolicySpec {
            kind: type_name(kind).to_string(),
            ttl_seconds,
            max_ttl_seconds,
            max_attempts,
            code_length,
            code_alphabet: code_alphabet.map(Into::into),
            resend_cooldown_seconds,
            max_resends,
            resend_mode: resend_mode.map(Into::into),
            retention_seconds,
            one_active_per_user,
            templates: templates.map(|t| AcsTemplates {
                default_locale: t.default_locale,
                locales: t.locales,
            }),
            conditions: conditions.map(|c| AcsConditions {
                email_domains: c.email_domains,
                phone_prefixes: c.phone_prefixes,
            }),
            allowed_action_scopes,
            callback_url,
        }
    }
}

/// A policy in ACS names. Its ID is its alias.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AcsPolicy {
    pub alias: String,
    #[serde(flatten)]
    pub spec: AcsPolicySpec,
    pub version: u64,
    pub created_at: String,
    pub updated_at: String,
}

impl From<&Policy> for AcsPolicy {
    fn from(p: &Policy) -> Self {
        AcsPolicy {
            alias: p.alias.to_string(),
            spec: AcsPolicySpec::from(&p.spec),
            version: p.version,
            created_at: rfc3339(p.created_at),
            updated_at: rfc3339(p.updated_at),
        }
    }
}

/// `GET /compat/acs/v1/policies`: a page of policy IDs (aliases), as ACS lists them.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AcsPolicyIds {
    pub ids: Vec<String>,
    pub next_page_token: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AcsPageQuery {
    pub page_size: Option<usize>,
    pub page_token: Option<String>,
}

/// The tenant's runtime properties in ACS names (a PUT carries every one but
/// `allowedActionScopes`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AcsProperties {
    pub default_ttl_seconds: u64,
    pub max_ttl_seconds: u64,
    pub default_max_attempts: u32,
    pub max_attempts: u32,
    pub default_code_length: u32,
    pub retention_seconds: u64,
    pub max_live_challenges: u64,
    pub long_poll_max_seconds: u64,
    pub anonymous_failures_per_challenge_per_minute: u32,
    #[serde(default)]
    pub allowed_action_scopes: Vec<String>,
}

impl From<AcsProperties> for Properties {
    fn from(p: AcsProperties) -> Self {
        Properties {
            default_ttl_seconds: p.default_ttl_seconds,
            max_ttl_seconds: p.max_ttl_seconds,
            default_max_attempts: p.default_max_attempts,
            max_attempts: p.max_attempts,
            default_code_length: p.default_code_length,
            retention_seconds: p.retention_seconds,
            max_live_challenges: p.max_live_challenges,
            long_poll_max_seconds: p.long_poll_max_seconds,
            anonymous_failures_per_challenge_per_minute: p
                .anonymous_failures_per_challenge_per_minute,
            allowed_action_scopes: p.allowed_action_scopes,
        }
    }
}

impl From<&Properties> for AcsProperties {
    fn from(p: &Properties) -> Self {
        // Every native property, so a new one is a decision here too.
        let Properties {
            default_ttl_seconds,
            max_ttl_seconds,
            default_max_attempts,
            max_attempts,
            default_code_length,
            retention_seconds,
            max_live_challenges,
            long_poll_max_seconds,
            anonymous_failures_per_challenge_per_minute,
            allowed_action_scopes,
        } = p.clone();
        AcsProperties {
            default_ttl_seconds,
            max_ttl_seconds,
            default_max_attempts,
            max_attempts,
            default_code_length,
            retention_seconds,
            max_live_challenges,
            long_poll_max_seconds,
            anonymous_failures_per_challenge_per_minute,
            allowed_action_scopes,
        }
    }
}

/// The tenant's configuration in ACS names.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AcsConfiguration {
    #[serde(flatten)]
    pub properties: AcsProperties,
    pub version: u64,
    pub updated_at: Option<String>,
}

impl From<&TenantConfig> for AcsConfiguration {
    fn from(c: &TenantConfig) -> Self {
        AcsConfiguration {
            properties: AcsProperties::from(&c.properties),
            version: c.version,
            updated_at: c.updated_at.map(rfc3339),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_type_and_state_round_trips_through_its_acs_name() {
        for kind in ChallengeType::ALL {
            let name = type_name(kind);
            assert_eq!(name, kind.as_str().to_ascii_uppercase());
            assert_eq!(parse_type("type", name).is_ok(), ACS_TYPES.contains(&kind));
        }
        for raw in ["email_otp", "Email_Otp", "EMAILOTP", ""] {
            assert_eq!(parse_type("type", raw).unwrap_err().code(), "invalid_field");
        }
        assert_eq!(
            parse_type("type", "TOTP").unwrap_err().code(),
            "type_not_supported"
        );
        assert_eq!(parse_status("VERIFIED"), Some(State::Verified));
        assert_eq!(parse_status("DECLINED"), Some(State::Declined));
        assert_eq!(parse_status("verified"), None);
        assert_eq!(parse_status("Verified"), None);
    }
}
