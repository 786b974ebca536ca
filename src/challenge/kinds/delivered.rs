//! What the delivery kinds (`email_otp`, `sms_otp`, `email_link`) share: issuing each
//! actor's secret (a code, or the answer token a link carries) and turning a challenge
//! into the message one actor receives. Pure: the actor sends what this renders.

use super::{code, HashKey};
use crate::delivery::{
    EmailMessage, MessageKind, MessageVars, SmsMessage, TemplateError, TemplateSet, Templates,
};
use crate::model::{
    AnswerToken, Challenge, ChallengeType, DeliveryChannel, DeliveryPlan, Details, TokenHash,
};

/// A message ready for its transport.
#[derive(Clone)]
pub enum Outgoing {
    Email(EmailMessage),
    Sms(SmsMessage),
}

/// What create hands the new challenge's actor: each actor's plain secret (kept in the
/// actor's memory for same-secret resends) and the first message to each, rendered
/// once at create (where a template that cannot render refuses the request).
pub struct Prepared {
    pub secrets: Box<[String]>,
    pub messages: Vec<Outgoing>,
}

/// A fresh secret for one actor and the hash the challenge keeps of it.
pub fn issue_secret(
    key: &HashKey,
    challenge: &Challenge,
    plan: &DeliveryPlan,
) -> (String, TokenHash) {
    if challenge.kind.uses_code() {
        let secret = code::generate(plan.code_length, plan.code_alphabet);
        let hash = code::hash(key, &challenge.id, &secret);
        (secret, hash)
    } else {
        let token = AnswerToken::random();
        let hash = key.hash(token.expose());
        (token.expose().to_string(), hash)
    }
}

/// The link an `email_link` actor follows: the answer page with its token.
pub fn link(base_url: &str, challenge: &Challenge, token: &str) -> String {
    format!("{base_url}/c/{}?t={token}", challenge.id)
}

/// The message for actor `index`, whose secret is `secret`.
pub fn render(
    templates: &Templates,
    challenge: &Challenge,
    plan: &DeliveryPlan,
    index: usize,
    secret: &str,
    base_url: &str,
    now: crate::clock::Millis,
) -> Result<Outgoing, TemplateError> {
    let set: TemplateSet = plan
        .templates
        .as_deref()
        .and_then(|t| serde_json::from_str(t).ok())
        .unwrap_or_default();
    let (kind, code, link) = match challenge.kind {
        ChallengeType::EmailLink => (
            MessageKind::Link,
            None,
            Some(link(base_url, challenge, secret)),
        ),
        _ => (MessageKind::Code, Some(secret.to_string()), None),
    };
    let vars = MessageVars {
        code,
        link,
        user_id: challenge.actors[index].user_id.to_string(),
        details: challenge
            .details()
            .and_then(|d| serde_json::from_str::<Details>(d).ok())
            .unwrap_or(Details {
                message: None,
                fields: vec![],
            }),
        locale: plan.locale.as_deref().map(str::to_string),
        expires_at: challenge.life.expires_at,
        now,
    };
    let recipient = plan.actors[index].recipient.to_string();
    Ok(match plan.channel {
        DeliveryChannel::Email => Outgoing::Email(EmailMessage::new(
            recipient,
            templates.email(&set, kind, &vars)?,
        )),
        DeliveryChannel::Sms => Outgoing::Sms(SmsMessage {
            to: recipient,
            body: templates.sms(&set, kind, &vars)?,
            challenge_id: challenge.id.to_string(),
        }),
    })
}
