//! The `push` kind: an approve / deny request to one of the user's verified push
//! factors (`factor_id`), answered only by that device with its decision signed by its
//! enrolled P-256 key. Nothing else answers it: no answer tokens are issued, and a
//! bearer caller's answer is refused (`device_answer_required`).
//!
//! The device signs `signing_payload + "." + decision` ([`signing_payload`],
//! [`verify_decision`]); the payload is built from the challenge as the device is shown
//! it, so a signature approves exactly what the device displayed. [`verify_decision`]
//! and [`verify_signed`] are pure over the key and the signing string, so another face
//! can check a signature over its own signing string with them.
//!
//! A signature that does not verify is refused (`invalid_signature`) and changes
//! nothing: it costs no attempt, since only the device's key can produce a valid one.

use super::token::{Attempt, AttemptError, Signed};
use super::{DetailBounds, Field, HashKey, Kind, KindPlan, PlanContext, Secrets};
use crate::challenge::messages::ChallengeError;
use crate::challenge::state::Verdict;
use crate::challenge::Services;
use crate::clock::Millis;
use crate::engine::input::check_text;
use crate::engine::{CreateRequest, Error};
use crate::factors::push::{self, Platform};
use crate::factors::{Factor, FactorData, FactorStatus, FactorType};
use crate::model::{AnswerToken, Challenge, KindData, PolicySpec, State};
use crate::store::WriteError;

pub const MAX_MESSAGE: usize = 256;
pub const MAX_FIELDS: usize = 20;
pub const MAX_LABEL: usize = 36;
pub const MAX_VALUE: usize = 128;
pub const MAX_HIDDEN_DETAILS: usize = 1024;

/// The `push` kind.
pub struct Push;

/// A device's decision, as signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Approved,
    Denied,
}

impl Decision {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "approved" => Some(Decision::Approved),
            "denied" => Some(Decision::Denied),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Approved => "approved",
            Decision::Denied => "denied",
        }
    }

    pub fn allowed(self) -> bool {
        self == Decision::Approved
    }
}

/// The text a device signs (with `.` and its decision appended), one field a line:
///
/// ```text
/// challenge-server.push.v1
/// <challenge id>
/// <factor id>
/// <expires_at, RFC 3339 as served>
/// <details, the JSON text as served>
/// ```
///
/// Lines are joined by `\n` with none at the end; the JSON text never holds a raw line
/// break. `None` for a challenge that names no factor.
pub fn signing_payload(c: &Challenge) -> Option<String> {
    let factor = c.factor()?;
    Some(format!(
        "challenge-server.push.v1\n{}\n{}\n{}\n{}",
        c.id,
        factor,
        crate::clock::rfc3339(c.life.expires_at),
        c.details().unwrap_or("{}"),
    ))
}

/// True when `signature` (base64url of DER ECDSA-P256-SHA256) is the key's signature of
/// `signing_string + "." + decision`.
pub fn verify_decision(
    public_key: &[u8],
    signing_string: &str,
    decision: Decision,
    signature: &str,
) -> bool {
    let message = format!("{signing_string}.{}", decision.as_str());
    push::verify_der(public_key, message.as_bytes(), signature)
}

/// True when `signature_der` is the key's ECDSA-P256-SHA256 signature of the UTF-8 of
/// `signing_string` as it stands: for a face whose devices sign their own string (with
/// the decision inside it, or beside it) and encode the signature their own way.
pub fn verify_signed(public_key: &[u8], signing_string: &str, signature_der: &[u8]) -> bool {
    push::verify_der_bytes(public_key, signing_string.as_bytes(), signature_der)
}

fn check_hidden(request: &CreateRequest) -> Result<(), Error> {
    let len = request
        .hidden_details
        .as_ref()
        .map_or(0, |h| serde_json::to_string(h).map_or(0, |s| s.len()));
    if len > MAX_HIDDEN_DETAILS {
        return Err(Error::invalid(
            "field_too_long",
            format!("hidden_details is larger than {MAX_HIDDEN_DETAILS} bytes for push challenges"),
        ));
    }
    Ok(())
}

/// The push bounds on `details` (tighter than every kind's): a message is required.
fn check_details(request: &CreateRequest) -> Result<(), Error> {
    let Some(message) = request.details.as_ref().and_then(|d| d.message.as_deref()) else {
        return Err(Error::invalid(
            "invalid_field",
            "details.message is required for push challenges",
        ));
    };
    check_text("details.message", message, MAX_MESSAGE)?;
    let fields = request.details.as_ref().map_or(&[][..], |d| &d.fields[..]);
    if fields.len() > MAX_FIELDS {
        return Err(Error::invalid(
            "too_many_items",
            format!("details.fields holds more than {MAX_FIELDS} entries"),
        ));
    }
    for (i, field) in fields.iter().enumerate() {
        check_text(
            &format!("details.fields[{i}].label"),
            &field.label,
            MAX_LABEL,
        )?;
        check_text(
            &format!("details.fields[{i}].value"),
            &field.value,
            MAX_VALUE,
        )?;
    }
    Ok(())
}

impl Kind for Push {
    fn accepts(&self, field: Field) -> bool {
        field == Field::Factor
    }

    fn requires(&self, field: Field) -> bool {
        field == Field::Factor
    }

    /// As a method, it reaches its device (and the push gateway) only once started.
    fn starts_on_demand(&self) -> bool {
        true
    }

    fn detail_bounds(&self) -> DetailBounds {
        DetailBounds {
            message_required: true,
            message: MAX_MESSAGE,
            fields: MAX_FIELDS,
            label: MAX_LABEL,
            value: MAX_VALUE,
            hidden: MAX_HIDDEN_DETAILS,
        }
    }

    /// The request names one of the user's verified push factors, and its details are
    /// within the push bounds.
    fn plan(
        &self,
        request: &CreateRequest,
        _policy: Option<&PolicySpec>,
        ctx: &PlanContext<'_>,
    ) -> Result<KindPlan, Error> {
        check_details(request)?;
        check_hidden(request)?;
        if request.factor_id.is_none() {
            return Err(Error::invalid(
                "invalid_field",
                "factor_id is required for push challenges",
            ));
        }
        let factor = super::named_factor(ctx, FactorType::Push)?;
        Ok(KindData::Factor(factor.id))
    }

    /// No answer tokens: the device's signature is the only answer.
    fn issue(
        &self,
        _challenge: &mut Challenge,
        _tokens: Vec<AnswerToken>,
        _ctx: &PlanContext<'_>,
    ) -> Result<Secrets, Error> {
        Ok(Secrets::AnswerTokens(Vec::new()))
    }

    fn announce(&self, c: &Challenge, factor: &Factor) -> Option<serde_json::Value> {
        let FactorData::Push(device) = &factor.data else {
            return None;
        };
        if device.platform != Platform::Webhook {
            return None;
        }
        let details: serde_json::Value = c
            .details()
            .and_then(|d| serde_json::from_str(d).ok())
            .unwrap_or_default();
        Some(serde_json::json!({
            "event": "push.challenge.created",
            "id": c.id.to_string(),
            "factor_id": factor.id.to_string(),
            "user_id": c.user_id.to_string(),
            "expires_at": crate::clock::rfc3339(c.life.expires_at),
            "details": details,
            "signing_payload": signing_payload(c),
        }))
    }

    /// Without the device's key nothing can be judged: see [`Kind::judge_in`] below.
    fn judge(
        &self,
        _key: &HashKey,
        _challenge: &Challenge,
        _attempt: &Attempt,
    ) -> Result<Verdict, AttemptError> {
        Err(AttemptError::DeviceRequired)
    }

    fn judge_in(
        &self,
        services: &Services,
        c: &Challenge,
        attempt: &Attempt,
        now: Millis,
    ) -> Result<Verdict, ChallengeError> {
        let Some(device) = &attempt.device else {
            return Err(ChallengeError::Attempt(AttemptError::DeviceRequired));
        };
        let (Some(factor_id), Some(payload)) = (c.factor(), signing_payload(c)) else {
            return Ok(Verdict::Unrecognized);
        };
        if factor_id != device.factor_id {
            return Ok(Verdict::Unrecognized);
        }
        let bad = || ChallengeError::Attempt(AttemptError::BadSignature);
        let decision = if attempt.allowed {
            Decision::Approved
        } else {
            Decision::Denied
        };
        // A challenge that cannot take an answer changes nothing: its state refuses.
        let answerable = c.life.state == State::Issued && now < c.life.expires_at;
        if !answerable {
            return Ok(Verdict::Unrecognized);
        }
        let used = services
            .store
            .factors()
            .update(&c.tenant, &c.user_id, &factor_id, |factor| {
                let FactorData::Push(key) = &factor.data else {
                    return Err(());
                };
                let signed = factor.status == FactorStatus::Verified
                    && match &device.signature {
                        Signed::Native(signature) => {
                            verify_decision(&key.public_key, &payload, decision, signature)
                        }
                        Signed::Exact { messages, der } => messages
                            .iter()
                            .any(|m| verify_signed(&key.public_key, m, der)),
                    };
                if !signed {
                    return Err(());
                }
                let mut next = factor.clone();
                next.last_used_at = Some(now);
                Ok(next)
            });
        match used {
            Ok(Ok(_)) => Ok(Verdict::Accepted {
                actor: 0,
                allowed: decision.allowed(),
            }),
            Ok(Err(())) | Err(WriteError::NotFound) => Err(bad()),
            Err(e) => {
                tracing::error!(error = %e, challenge = %c.id, "cannot record a push factor's use; answer refused");
                Err(ChallengeError::Store(e.to_string()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;
    use p256::ecdsa::signature::Signer;
    use p256::ecdsa::{Signature, SigningKey};
    use p256::pkcs8::EncodePublicKey;

    #[test]
    fn a_decision_verifies_only_as_signed() {
        let key = SigningKey::random(&mut rand::rngs::OsRng);
        let der = key.verifying_key().to_public_key_der().unwrap();
        let payload = "challenge-server.push.v1\nchl_x\nfac_y\n2030-01-01T00:00:00Z\n{}";
        let signature: Signature = key.sign(format!("{payload}.approved").as_bytes());
        let encoded =
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(signature.to_der().as_bytes());
        let der = der.as_bytes();
        assert!(verify_decision(der, payload, Decision::Approved, &encoded));
        assert!(!verify_decision(der, payload, Decision::Denied, &encoded));
        assert!(!verify_decision(
            der,
            "challenge-server.push.v1\nchl_z",
            Decision::Approved,
            &encoded
        ));
    }
}
