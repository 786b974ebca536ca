//! The HAL shapes of the Apiture face: a challenge (`_id`, `userId`, `state`, `reason`,
//! `_embedded.authenticators`, `_links`) and its authenticators (`_id`, `type`
//! `{name, category}`, `state`, `attempts`, `maxAttempts`, masked `labels`, `_links`
//! with `self`, `apiture:start` and `apiture:verify`). An Apiture challenge is one engine
//! challenge; its authenticators are that challenge's methods, their ids its method ids.
//! Links are paths on this server (HAL allows relative `href`s).

use serde_json::{json, Value};

use crate::clock::rfc3339;
use crate::model::{Challenge, ChallengeType, Method, MethodState, State};

/// Where the face keeps the caller's `reason` in the engine challenge's hidden details.
pub const REASON_KEY: &str = "apitureReason";

/// An authenticator type's `name` and `category`, for the types this face knows.
pub fn type_of(kind: ChallengeType) -> Option<(&'static str, &'static str)> {
    match kind {
        ChallengeType::SmsOtp => Some(("sms", "otp")),
        ChallengeType::EmailOtp => Some(("email", "otp")),
        ChallengeType::Totp => Some(("totp", "otp")),
        ChallengeType::Push => Some(("push", "possession")),
        ChallengeType::Webauthn => Some(("webauthn", "biometric")),
        _ => None,
    }
}

/// `{"name", "category"}` of an authenticator type.
pub fn type_body(kind: ChallengeType) -> Value {
    let (name, category) = type_of(kind).unwrap_or(("unknown", "unknown"));
    json!({"name": name, "category": category})
}

/// The challenge's Apiture state: `pending` (native issued, or pending), `verified`,
/// `redeemed` (completed), `failed` (failed, or declined on a device), `expired`.
pub fn challenge_state(state: State) -> &'static str {
    match state {
        // Apiture's own challenges are issued at once; one held back natively (`pending`)
        // has not been answered either.
        State::Issued | State::Pending | State::Cancelled => "pending",
        State::Verified => "verified",
        State::Completed => "redeemed",
        State::Failed | State::Declined => "failed",
        State::Expired => "expired",
    }
}

/// The authenticator's Apiture state: `verified` and `failed` (declined counts as
/// failed) as the method's; an open method is `expired` with its challenge, else
/// `started` once its code was sent (a `totp` one from the start), else `pending`.
pub fn authenticator_state(c: &Challenge, m: &Method) -> &'static str {
    match m.state {
        MethodState::Verified => "verified",
        MethodState::Failed | MethodState::Declined => "failed",
        MethodState::Open if c.life.state == State::Expired => "expired",
        MethodState::Open if m.started() => "started",
        MethodState::Open => "pending",
    }
}

/// Where a method's code goes, masked: the last four digits of a phone number, or an
/// email address with all but the first letter of its local part hidden.
pub fn labels(m: &Method) -> Vec<String> {
    let Some(plan) = m.delivery() else {
        return Vec::new();
    };
    plan.actors
        .iter()
        .map(|a| match a.recipient.split_once('@') {
            Some((local, domain)) => {
                format!("{}•••@{domain}", local.chars().next().unwrap_or('•'))
            }
            None => {
                let digits: Vec<char> = a.recipient.chars().filter(char::is_ascii_digit).collect();
                digits[digits.len().saturating_sub(4)..].iter().collect()
            }
        })
        .collect()
}

pub fn challenge_href(c: &Challenge) -> String {
    format!("/auth/challenges/{}", c.id)
}

pub fn authenticator_href(c: &Challenge, m: &Method) -> String {
    format!("/auth/challenges/{}/authenticators/{}", c.id, m.id)
}

/// One authenticator.
pub fn authenticator(c: &Challenge, m: &Method) -> Value {
    let href = authenticator_href(c, m);
    json!({
        "_id": m.id.to_string(),
        "type": type_body(m.kind),
        "state": authenticator_state(c, m),
        "attempts": m.attempts,
        "maxAttempts": m.max_attempts,
        "labels": labels(m),
        "createdAt": rfc3339(c.created_at),
        "startedAt": m.started_at.map(rfc3339),
        "expiresAt": rfc3339(c.life.expires_at),
        "_links": {
            "self": {"href": href},
            "apiture:start": {"href": format!("{href}/starts")},
            "apiture:verify": {"href": format!("{href}/verifications")},
        },
    })
}

/// The `reason` the challenge was created with, if any.
pub fn reason(c: &Challenge) -> Option<String> {
    let hidden: Value = serde_json::from_str(c.hidden_details()?).ok()?;
    hidden[REASON_KEY].as_str().map(str::to_string)
}

/// One challenge with its authenticators embedded.
pub fn challenge(c: &Challenge) -> Value {
    let href = challenge_href(c);
    let authenticators: Vec<Value> = c.methods().iter().map(|m| authenticator(c, m)).collect();
    json!({
        "_id": c.id.to_string(),
        "userId": &*c.user_id,
        "state": challenge_state(c.life.state),
        "reason": reason(c),
        "createdAt": rfc3339(c.created_at),
        "updatedAt": rfc3339(c.life.updated_at),
        "expiresAt": rfc3339(c.life.expires_at),
        "_embedded": {"authenticators": authenticators},
        "_links": {
            "self": {"href": href},
            "apiture:redeem": {"href": format!("{href}/redemptions")},
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_native_state_has_an_apiture_name() {
        assert_eq!(challenge_state(State::Issued), "pending");
        assert_eq!(challenge_state(State::Pending), "pending");
        assert_eq!(challenge_state(State::Verified), "verified");
        assert_eq!(challenge_state(State::Completed), "redeemed");
        assert_eq!(challenge_state(State::Failed), "failed");
        assert_eq!(challenge_state(State::Expired), "expired");
    }

    #[test]
    fn types_have_the_documented_categories() {
        assert_eq!(type_of(ChallengeType::SmsOtp), Some(("sms", "otp")));
        assert_eq!(type_of(ChallengeType::Push), Some(("push", "possession")));
        assert_eq!(
            type_of(ChallengeType::Webauthn),
            Some(("webauthn", "biometric"))
        );
        assert_eq!(type_of(ChallengeType::Token), None);
    }
}
