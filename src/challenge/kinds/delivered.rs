//! What the delivery kinds (`email_otp`, `sms_otp`, `email_link`) share: planning the
//! delivery of a create (recipients, locale, code format and resend rules), issuing
//! each actor's secret (a code, or the answer token a link carries) and turning a
//! challenge into the message one actor receives. Pure: the actor sends what this
//! renders.

use super::{code, HashKey, KindPlan, PlanContext, SecretForm};
use crate::delivery::{
    EmailMessage, MessageKind, MessageVars, SmsMessage, TemplateError, TemplateSet, Templates,
};
use crate::engine::{input, CreateRequest, Error, Recipient};
use crate::model::{
    ActorDelivery, AnswerToken, Challenge, DeliveryChannel, DeliveryPlan, DeliveryStatus, Details,
    PolicySpec, TokenHash,
};

/// What a challenge's kind puts in its messages (a code unless the kind says link).
fn secret_form(challenge: &Challenge) -> SecretForm {
    super::of(challenge.kind)
        .and_then(|k| k.delivery())
        .map_or(SecretForm::Code, |d| d.secret)
}

/// The delivery plan of a new challenge over `channel`: each actor's recipient
/// (checked against the policy's conditions), the locale, and the code format and
/// resend rules from the policy, else the server's defaults.
pub fn plan(
    channel: DeliveryChannel,
    request: &CreateRequest,
    policy: Option<&PolicySpec>,
    ctx: &PlanContext<'_>,
) -> Result<KindPlan, Error> {
    let conditions = policy.and_then(|p| p.conditions.as_ref());
    let per_actor = request
        .actors
        .iter()
        .flatten()
        .any(|a| a.recipient.is_some());
    let recipients: Vec<String> = match &request.actors {
        Some(actors) if per_actor || actors.len() > 1 => actors
            .iter()
            .enumerate()
            .map(|(i, a)| {
                check_recipient(
                    &format!("actors[{i}].recipient"),
                    a.recipient.as_ref(),
                    channel,
                    conditions,
                )
            })
            .collect::<Result<_, _>>()?,
        _ => vec![check_recipient(
            "recipient",
            request.recipient.as_ref(),
            channel,
            conditions,
        )?],
    };
    if let Some(locale) = &request.locale {
        let ok = locale.len() <= 35
            && locale.split('-').all(|p| {
                !p.is_empty() && p.len() <= 8 && p.bytes().all(|b| b.is_ascii_alphanumeric())
            });
        if !ok {
            return Err(Error::invalid(
                "invalid_field",
                "locale is not a language tag such as en or nl-BE",
            ));
        }
    }
    let send = request.send.unwrap_or(true);
    let defaults = &ctx.services.delivery;
    Ok(KindPlan::Delivery(DeliveryPlan {
        channel,
        locale: request.locale.as_deref().map(Into::into),
        code_length: policy
            .and_then(|p| p.code_length)
            .unwrap_or(ctx.config.default_code_length)
            .clamp(4, 10) as u8,
        code_alphabet: policy
            .and_then(|p| p.code_alphabet)
            .unwrap_or(defaults.code_alphabet),
        resend_cooldown_seconds: policy
            .and_then(|p| p.resend_cooldown_seconds)
            .map_or(defaults.resend_cooldown_seconds, |s| s as u32),
        max_resends: policy
            .and_then(|p| p.max_resends)
            .unwrap_or(defaults.max_resends),
        resend_mode: policy
            .and_then(|p| p.resend_mode)
            .unwrap_or(defaults.resend_mode),
        templates: policy
            .and_then(|p| p.templates.as_ref())
            .map(|t| serde_json::to_string(t).expect("templates encode").into()),
        resends: 0,
        last_sent_at: send.then_some(ctx.now),
        actors: recipients
            .iter()
            .map(|r| ActorDelivery {
                recipient: r.as_str().into(),
                status: if send {
                    DeliveryStatus::Pending
                } else {
                    DeliveryStatus::NotSent
                },
                attempts: 0,
                last_error: None,
                sent_at: None,
            })
            .collect(),
    }))
}

/// Issues each actor's secret into the assembled challenge (its hash replaces the
/// answer token's) and renders the first messages, so a template that cannot render
/// refuses the create; takes the recipients' daily allowance if the challenge is sent
/// now.
pub fn issue(challenge: &mut Challenge, ctx: &PlanContext<'_>) -> Result<Prepared, Error> {
    let services = ctx.services;
    let plan = challenge
        .delivery()
        .cloned()
        .expect("a delivered kind plans its delivery");
    transport_ready(services, plan.channel, challenge.kind)?;
    let mut secrets = Vec::with_capacity(challenge.actors.len());
    for i in 0..challenge.actors.len() {
        let (secret, hash) = issue_secret(&services.key, challenge, &plan);
        challenge.actors[i].token_hash = hash;
        secrets.push(secret);
    }
    let messages = secrets
        .iter()
        .enumerate()
        .map(|(i, secret)| {
            render(
                services.deliverer.templates(),
                challenge,
                &plan,
                i,
                secret,
                &services.base_url,
                ctx.now,
            )
            .map_err(|e| Error::invalid("template_error", e.to_string()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    // The recipients' daily caps are taken by the engine, around the spawn, so that only
    // a create that happens counts.
    Ok(Prepared {
        secrets: secrets.into_boxed_slice(),
        messages,
    })
}

/// `channel_not_configured` unless the server has a transport for `channel`.
pub fn transport_ready(
    services: &crate::challenge::Services,
    channel: DeliveryChannel,
    kind: crate::model::ChallengeType,
) -> Result<(), Error> {
    let ready = match channel {
        DeliveryChannel::Email => services.deliverer.email().is_some(),
        DeliveryChannel::Sms => services.deliverer.sms().is_some(),
    };
    if ready {
        Ok(())
    } else {
        Err(Error::invalid(
            "channel_not_configured",
            format!(
                "{} delivery is not configured on this server",
                kind.as_str()
            ),
        ))
    }
}

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
    if secret_form(challenge) == SecretForm::Code {
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
    let (kind, code, link) = match secret_form(challenge) {
        SecretForm::Link => (
            MessageKind::Link,
            None,
            Some(link(base_url, challenge, secret)),
        ),
        SecretForm::Code => (MessageKind::Code, Some(secret.to_string()), None),
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

/// Checks a recipient for `channel` against the policy's conditions: an email address
/// (no display name, no line breaks) or an E.164 number.
pub fn check_recipient(
    field: &str,
    recipient: Option<&Recipient>,
    channel: crate::model::DeliveryChannel,
    conditions: Option<&crate::model::policy::Conditions>,
) -> Result<String, Error> {
    use crate::model::DeliveryChannel;
    let missing =
        |what: &str| Error::invalid("recipient_required", format!("{field} needs {what}"));
    match channel {
        DeliveryChannel::Email => {
            let email = recipient
                .and_then(|r| r.email.as_deref())
                .ok_or_else(|| missing("an email address"))?;
            input::check_text(&format!("{field}.email"), email, 254)?;
            let address: lettre::Address = email.parse().map_err(|_| {
                Error::invalid(
                    "invalid_email",
                    format!("{field}.email is not an email address"),
                )
            })?;
            if let Some(domains) = conditions.and_then(|c| c.email_domains.as_ref()) {
                let domain = address.domain().to_ascii_lowercase();
                if !domains.contains(&domain) {
                    return Err(Error::invalid(
                        "recipient_not_allowed",
                        format!("{field}.email: the policy does not allow the domain {domain}"),
                    ));
                }
            }
            Ok(email.to_string())
        }
        DeliveryChannel::Sms => {
            let phone = recipient
                .and_then(|r| r.phone.as_deref())
                .ok_or_else(|| missing("a phone number"))?;
            let number = crate::delivery::parse_e164(phone).map_err(|_| {
                Error::invalid(
                    "invalid_phone",
                    format!("{field}.phone is not an E.164 number (+ and 8–15 digits)"),
                )
            })?;
            if let Some(prefixes) = conditions.and_then(|c| c.phone_prefixes.as_ref()) {
                if !prefixes
                    .iter()
                    .any(|p| number.as_str().starts_with(p.as_str()))
                {
                    return Err(Error::invalid(
                        "recipient_not_allowed",
                        format!("{field}.phone: the policy does not allow this country prefix"),
                    ));
                }
            }
            Ok(number.as_str().to_string())
        }
    }
}
