//! Agilicus' models as this face reads and writes them (spec/agilicus-challenges.md §3),
//! and the face's record of a challenge. Rendering rules the SDK enforces on receipt:
//! no `null` anywhere (an absent optional field is omitted), every required field
//! present, only the listed enum values. Requests may carry read-only fields
//! (`metadata`, `status`) and unknown keys: they are ignored.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::clock::rfc3339;
use crate::model::{Challenge, ChallengeType, DeliveryStatus, State};

/// `timeout_seconds`: 1..=86400, default 600.
pub const MAX_TIMEOUT_SECONDS: u64 = 86_400;
pub const DEFAULT_TIMEOUT_SECONDS: u64 = 600;

/// A `Challenge` body (create, replace).
#[derive(Debug, Deserialize)]
pub struct ChallengeIn {
    pub spec: SpecIn,
}

#[derive(Debug, Default, Deserialize)]
pub struct SpecIn {
    pub user_id: Option<String>,
    pub challenge_type: Option<String>,
    pub challenge_types: Option<Vec<String>>,
    pub send_now: Option<bool>,
    pub timeout_seconds: Option<u64>,
    pub response_uri: Option<String>,
    pub origin: Option<String>,
    pub challenge_endpoints: Option<Vec<Endpoint>>,
    pub answer_data: Option<Map<String, Value>>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
}

/// What the face keeps of an Agilicus challenge beside the engine's record of it (engine
/// data, `engine::records`, named by the challenge id): the spec fields the engine has
/// no place for, and `answer_data` until the one successful answer takes it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ChallengeRecord {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub challenge_type: Option<String>,
    #[serde(default)]
    pub challenge_types: Vec<String>,
    #[serde(default)]
    pub send_now: bool,
    #[serde(default)]
    pub timeout_seconds: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_uri: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub challenge_endpoints: Vec<Endpoint>,
    /// `answer_data`, sealed (`Engine::seal_record_secret`, base64): write-only, never
    /// rendered on a challenge; opened and handed back once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sealed_answer_data: Option<String>,
    /// A one-time-use action challenge: its actors, with their orgs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub actors: Vec<ActorIo>,
    /// Deleted through this face after it had ended: it answers 404 from then on.
    #[serde(default)]
    pub deleted: bool,
}

/// A `Challenge` as the SDK receives it.
#[derive(Debug, Serialize)]
pub struct ChallengeOut {
    pub spec: SpecOut,
    pub metadata: Metadata,
    pub status: StatusOut,
}

#[derive(Debug, Serialize)]
pub struct SpecOut {
    pub user_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub challenge_type: Option<String>,
    pub challenge_types: Vec<String>,
    pub send_now: bool,
    pub timeout_seconds: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_uri: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub challenge_endpoints: Vec<Endpoint>,
}

#[derive(Debug, Serialize)]
pub struct Metadata {
    pub id: String,
    pub created: String,
    pub updated: String,
}

#[derive(Debug, Serialize)]
pub struct StatusOut {
    pub state: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub public_challenge: Option<String>,
    /// Type `code`: the answer, in the create response only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub answered_at: Option<String>,
}

/// The Agilicus type a native kind is served as; `None`: this face does not serve it
/// (the email kinds have no Agilicus counterpart).
pub fn agilicus_type(kind: ChallengeType) -> Option<&'static str> {
    match kind {
        ChallengeType::Token => Some("code"),
        ChallengeType::Totp => Some("totp"),
        ChallengeType::Push => Some("web_push"),
        ChallengeType::Webauthn => Some("webauthn"),
        ChallengeType::SmsOtp => Some("sms"),
        ChallengeType::OneTimeUseAction => Some("one_time_use_action"),
        ChallengeType::EmailOtp | ChallengeType::EmailLink => None,
    }
}

/// The native kind an Agilicus type is made as (spec §5); `None`: not one this face
/// can make.
pub fn native_kind(agilicus: &str) -> Option<ChallengeType> {
    match agilicus {
        "code" => Some(ChallengeType::Token),
        "totp" => Some(ChallengeType::Totp),
        "sms" => Some(ChallengeType::SmsOtp),
        "webauthn" => Some(ChallengeType::Webauthn),
        "web_push" => Some(ChallengeType::Push),
        "one_time_use_action" => Some(ChallengeType::OneTimeUseAction),
        _ => None,
    }
}

/// `status.state` of a challenge (spec §7); `None` for a cancelled one, which this face
/// shows as deleted (404). Native `failed` (too many wrong answers) is
/// `challenge_declined`: the challenge is no longer valid and was not passed, which is
/// what `declined` means to an Agilicus caller; `challenge_failed` says the challenge
/// could not be issued — a delivery that failed to every recipient.
pub fn state_of(c: &Challenge) -> Option<&'static str> {
    Some(match c.life.state {
        State::Pending => "pending",
        State::Issued if delivery_failed(c) => "challenge_failed",
        State::Issued => "issued",
        State::Verified | State::Completed => "challenge_passed",
        State::Declined | State::Failed => "challenge_declined",
        State::Expired => "timed_out",
        State::Cancelled => return None,
    })
}

fn delivery_failed(c: &Challenge) -> bool {
    c.delivery().is_some_and(|plan| {
        !plan.actors.is_empty()
            && plan
                .actors
                .iter()
                .all(|a| a.status == DeliveryStatus::Failed)
    })
}

impl ChallengeOut {
    /// The challenge as this face shows it, its Agilicus fields from `record` (absent
    /// for a challenge made through another face); `None` if this face does not show it.
    pub fn new(c: &Challenge, record: Option<&ChallengeRecord>) -> Option<ChallengeOut> {
        let state = state_of(c)?;
        if record.is_some_and(|r| r.deleted) {
            return None;
        }
        let own = agilicus_type(c.kind)?;
        let lifetime = ((c.life.expires_at - c.created_at) / 1000).max(1) as u64;
        let (challenge_type, challenge_types, send_now, timeout, response_uri, origin, endpoints) =
            match record {
                Some(r) => (
                    r.challenge_type.clone(),
                    r.challenge_types.clone(),
                    r.send_now,
                    r.timeout_seconds,
                    r.response_uri.clone(),
                    r.origin.clone(),
                    r.challenge_endpoints.clone(),
                ),
                None => (
                    Some(own.to_string()),
                    vec![own.to_string()],
                    true,
                    lifetime,
                    None,
                    None,
                    Vec::new(),
                ),
            };
        Some(ChallengeOut {
            spec: SpecOut {
                user_id: c.user_id.to_string(),
                challenge_type,
                challenge_types,
                send_now,
                timeout_seconds: timeout.clamp(1, MAX_TIMEOUT_SECONDS),
                response_uri,
                origin,
                challenge_endpoints: endpoints.into_iter().map(masked).collect(),
            },
            metadata: Metadata {
                id: c.id.to_string(),
                created: rfc3339(c.created_at),
                updated: rfc3339(c.life.updated_at),
            },
            status: StatusOut {
                state,
                public_challenge: c.webauthn().map(|plan| plan.options.to_string()),
                code: None,
                answered_at: c.life.answered_at.map(rfc3339),
            },
        })
    }
}

/// An endpoint as shown: a phone number (type `sms`) keeps its first two and last
/// four characters, as the native face shows a recipient.
fn masked(mut e: Endpoint) -> Endpoint {
    if e.kind.as_deref() == Some("sms") {
        e.endpoint = e.endpoint.map(|phone| {
            let chars: Vec<char> = phone.chars().collect();
            if chars.len() <= 6 {
                return "•".repeat(chars.len());
            }
            let head: String = chars[..2].iter().collect();
            let tail: String = chars[chars.len() - 4..].iter().collect();
            format!("{head}{}{tail}", "•".repeat(chars.len() - 6))
        });
    }
    e
}

/// `ChallengeAnswer`, the body of an accepted answer.
#[derive(Debug, Serialize)]
pub struct ChallengeAnswer {
    pub spec: ChallengeAnswerSpec,
}

#[derive(Debug, Serialize)]
pub struct ChallengeAnswerSpec {
    pub answer: String,
    pub challenge_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub answer_data: Option<Map<String, Value>>,
}

/// A `ChallengeActor`, in and out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActorIo {
    pub user_id: String,
    pub org_id: String,
}

/// `OneTimeUseActionChallenge`, the create body.
#[derive(Debug, Deserialize)]
pub struct OneTimeUseIn {
    pub spec: OneTimeUseSpec,
}

/// `OneTimeUseActionChallengeSpec`: the request's, echoed in the response.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OneTimeUseSpec {
    pub approved_actions: Vec<HttpActionIo>,
    pub declined_actions: Vec<HttpActionIo>,
    pub actors: Vec<ActorIo>,
    pub timeout_seconds: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org_id: Option<String>,
}

/// `HTTPChallengeAction` (the one `ChallengeAction` there is).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HttpActionIo {
    pub challenge_action_type: String,
    pub method: String,
    pub uri: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scopes: Option<Vec<String>>,
}

/// `OneTimeUseActionChallengeResponse`.
#[derive(Debug, Serialize)]
pub struct OneTimeUseOut {
    pub challenge: ChallengeOut,
    pub one_time_use_challenge: OneTimeUseEcho,
    pub answer_details: Vec<AnswerDetail>,
}

#[derive(Debug, Serialize)]
pub struct OneTimeUseEcho {
    pub spec: OneTimeUseSpec,
}

/// `OneTimeUseActionChallengeAnswerDetail`.
#[derive(Debug, Serialize)]
pub struct AnswerDetail {
    pub actor: ActorIo,
    pub approve_uri: String,
    pub decline_uri: String,
}

/// A bool query parameter as Python's `urlencode` writes one (`True`/`False`), or as
/// others do (`true`/`false`/`1`/`0`), case-insensitive.
pub fn parse_bool(raw: &str) -> Option<bool> {
    match raw.to_ascii_lowercase().as_str() {
        "true" | "1" => Some(true),
        "false" | "0" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ChallengeId, Lifecycle, TenantId};

    fn challenge(kind: ChallengeType, state: State) -> Challenge {
        let mut life = Lifecycle::issued(1_000, 601_000, 5);
        life.state = state;
        Challenge {
            id: ChallengeId::random(),
            tenant: TenantId::parse("acme").unwrap(),
            kind,
            user_id: "alice".into(),
            actors: Vec::new(),
            created_at: 1_000,
            life,
            retention_ms: 0,
            extras: None,
        }
    }

    fn has_null(v: &Value) -> bool {
        match v {
            Value::Null => true,
            Value::Array(items) => items.iter().any(has_null),
            Value::Object(map) => map.values().any(has_null),
            _ => false,
        }
    }

    #[test]
    fn bools_read_as_python_and_others_write_them() {
        for (raw, want) in [
            ("true", true),
            ("True", true),
            ("TRUE", true),
            ("1", true),
            ("false", false),
            ("False", false),
            ("0", false),
        ] {
            assert_eq!(parse_bool(raw), Some(want), "{raw}");
        }
        for raw in ["", "yes", "2", "truee", "none"] {
            assert_eq!(parse_bool(raw), None, "{raw}");
        }
    }

    #[test]
    fn native_states_map_onto_agilicus_states() {
        let cases = [
            (State::Pending, Some("pending")),
            (State::Issued, Some("issued")),
            (State::Verified, Some("challenge_passed")),
            (State::Completed, Some("challenge_passed")),
            (State::Declined, Some("challenge_declined")),
            (State::Failed, Some("challenge_declined")),
            (State::Expired, Some("timed_out")),
            (State::Cancelled, None),
        ];
        for (native, agilicus) in cases {
            assert_eq!(
                state_of(&challenge(ChallengeType::Token, native)),
                agilicus,
                "{native:?}"
            );
        }
    }

    #[test]
    fn a_challenge_renders_without_nulls_and_with_every_required_field() {
        let c = challenge(ChallengeType::Token, State::Issued);
        let out = serde_json::to_value(ChallengeOut::new(&c, None).unwrap()).unwrap();
        assert!(!has_null(&out), "{out}");
        assert_eq!(out["spec"]["user_id"], "alice");
        assert_eq!(out["spec"]["challenge_types"], serde_json::json!(["code"]));
        assert_eq!(out["spec"]["timeout_seconds"], 600);
        assert_eq!(out["status"]["state"], "issued");
        assert!(out["status"].get("code").is_none());
        assert!(out["status"].get("answered_at").is_none());
        assert_eq!(out["metadata"]["id"], c.id.to_string());

        let record = ChallengeRecord {
            challenge_types: vec!["code".into()],
            sealed_answer_data: Some("s3".into()),
            ..ChallengeRecord::default()
        };
        let out = serde_json::to_value(ChallengeOut::new(&c, Some(&record)).unwrap()).unwrap();
        assert!(!has_null(&out), "{out}");
        assert!(!out.to_string().contains("s3"), "answer_data is write-only");
        assert!(out["spec"].get("response_uri").is_none());
    }

    #[test]
    fn kinds_without_an_agilicus_type_and_deleted_ones_are_not_shown() {
        let c = challenge(ChallengeType::EmailOtp, State::Issued);
        assert!(ChallengeOut::new(&c, None).is_none());
        let c = challenge(ChallengeType::Token, State::Cancelled);
        assert!(ChallengeOut::new(&c, None).is_none());
        let c = challenge(ChallengeType::Token, State::Verified);
        let deleted = ChallengeRecord {
            deleted: true,
            ..ChallengeRecord::default()
        };
        assert!(ChallengeOut::new(&c, Some(&deleted)).is_none());
    }

    #[test]
    fn phone_endpoints_are_masked() {
        let e = masked(Endpoint {
            endpoint: Some("+15551234567".into()),
            kind: Some("sms".into()),
        });
        assert_eq!(e.endpoint.as_deref(), Some("+1••••••4567"));
        let other = Endpoint {
            endpoint: Some("fac_x".into()),
            kind: Some("totp".into()),
        };
        assert_eq!(masked(other.clone()), other);
    }
}
