//! `/v1/challenges` and `/v1/challenges/{challenge_id}[/answers]`: create (bearer), and
//! the four calls the SDK makes without a token — get, replace, delete and answer — on
//! the capability of the challenge id (see the module doc of `agilicus`).
//!
//! How the Agilicus types land on the engine's kinds (README.md "Agilicus"):
//! - `code` is a `token` challenge whose one answer token is 40 letters and digits: it
//!   is `status.code`, shown in the create response only, and the answer;
//! - `totp` is a `totp` challenge on the user's most recently verified TOTP factor;
//! - `sms` is an `sms_otp` challenge to the number a `challenge_endpoints` entry of type
//!   `sms` names (E.164); its code goes by SMS, the user gives it back;
//! - `webauthn` is a `webauthn` challenge on the WebAuthn enrollment a
//!   `challenge_endpoints` entry of type `webauthn` names; `status.public_challenge` is
//!   its request options, the answer the assertion (`PublicKeyCredential` JSON);
//! - `one_time_use_action` is made by `actions.rs`.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;

use super::dto::*;
use super::errors::AgilicusError;
use super::{
    acting_for, authenticate, body, located, open_answer_data, record_of, require, save_record,
    seal_answer_data,
};
use crate::api::State;
use crate::auth::Scope;
use crate::challenge::kinds::token::Attempt;
use crate::engine::{CreateRequest, Error, Recipient, View};
use crate::factors::{FactorStatus, FactorType};
use crate::model::{AnswerToken, ChallengeType, State as Native};

/// The most bytes of `answer_data`, as JSON.
pub const MAX_ANSWER_DATA: usize = 8192;

/// Every value the contract lists for `challenge_type` (spec §4).
const TYPES: [&str; 6] = [
    "sms",
    "web_push",
    "totp",
    "webauthn",
    "one_time_use_action",
    "code",
];

/// The one Agilicus type a spec asks for (`challenge_type` and `challenge_types`
/// together): 400 when it names none, an unknown one, or several distinct ones (a
/// challenge answered by any of several types is not yet possible).
pub fn requested_type(spec: &SpecIn) -> Result<Option<String>, AgilicusError> {
    let mut named: Vec<&str> = spec
        .challenge_types
        .iter()
        .flatten()
        .map(String::as_str)
        .chain(spec.challenge_type.as_deref())
        .collect();
    named.sort_unstable();
    named.dedup();
    if let Some(unknown) = named.iter().find(|t| !TYPES.contains(t)) {
        return Err(AgilicusError::invalid(
            "invalid_field",
            format!(
                "challenge type {unknown:?} is not one of {}",
                TYPES.join(", ")
            ),
        ));
    }
    match named.as_slice() {
        [] => Ok(None),
        [one] => Ok(Some(one.to_string())),
        _ => Err(AgilicusError::invalid(
            "unsupported_challenge_types",
            "a challenge takes one challenge type for now: challenge_type and challenge_types must name the same one",
        )),
    }
}

fn check_timeout(timeout: u64) -> Result<(), AgilicusError> {
    if (1..=MAX_TIMEOUT_SECONDS).contains(&timeout) {
        Ok(())
    } else {
        Err(AgilicusError::invalid(
            "out_of_range",
            format!("timeout_seconds must be between 1 and {MAX_TIMEOUT_SECONDS}"),
        ))
    }
}

/// Checks the spec's free fields (`response_uri`, `origin`, `challenge_endpoints`,
/// `answer_data`) against their bounds.
fn check_free_fields(spec: &SpecIn) -> Result<(), AgilicusError> {
    use crate::engine::input::{check_text, check_url};
    if let Some(uri) = &spec.response_uri {
        check_url("spec.response_uri", uri)?;
    }
    if let Some(origin) = &spec.origin {
        check_text("spec.origin", origin, 256)?;
    }
    let endpoints = spec.challenge_endpoints.as_deref().unwrap_or_default();
    if endpoints.len() > 16 {
        return Err(AgilicusError::invalid(
            "too_many_items",
            "challenge_endpoints holds more than 16 entries",
        ));
    }
    for (i, e) in endpoints.iter().enumerate() {
        if let Some(endpoint) = &e.endpoint {
            check_text(&format!("challenge_endpoints[{i}].endpoint"), endpoint, 256)?;
        }
        if let Some(kind) = &e.kind {
            check_text(&format!("challenge_endpoints[{i}].type"), kind, 64)?;
        }
    }
    if let Some(data) = &spec.answer_data {
        if serde_json::to_string(data).map_or(0, |s| s.len()) > MAX_ANSWER_DATA {
            return Err(AgilicusError::invalid(
                "field_too_long",
                format!("answer_data is larger than {MAX_ANSWER_DATA} bytes"),
            ));
        }
    }
    Ok(())
}

/// The user's TOTP factor a `totp` challenge is answered with: the most recently
/// verified one; 400 `no_enrolled_factor` without any.
async fn totp_factor(
    state: &State,
    tenant: &crate::model::TenantId,
    user_id: &str,
) -> Result<String, AgilicusError> {
    let principal = acting_for(tenant, &[Scope::EnrollmentGet]);
    let (factors, _) = state
        .engine
        .factors(&principal, user_id.to_string(), None, 1000)
        .await?;
    factors
        .iter()
        .filter(|f| f.kind() == FactorType::Totp && f.status == FactorStatus::Verified)
        .max_by_key(|f| f.updated_at)
        .map(|f| f.id.to_string())
        .ok_or_else(|| {
            AgilicusError::invalid(
                "no_enrolled_factor",
                "the user has no verified TOTP enrollment",
            )
        })
}

/// The endpoint of the spec's first `challenge_endpoints` entry of type `kind`.
fn endpoint_of(spec: &SpecIn, kind: &str) -> Option<String> {
    spec.challenge_endpoints
        .iter()
        .flatten()
        .find(|e| e.kind.as_deref() == Some(kind))
        .and_then(|e| e.endpoint.clone())
}

/// `create_challenge`: 201 `Challenge` (with `status.code` for type `code`).
pub async fn create(
    req: HttpRequest,
    payload: web::Payload,
    state: State,
) -> Result<HttpResponse, AgilicusError> {
    let principal = authenticate(&req, &state)?;
    require(&principal, Scope::Post)?;
    let input: ChallengeIn = body(&req, payload, &state).await?;
    let spec = input.spec;
    let user_id = spec
        .user_id
        .clone()
        .ok_or_else(|| AgilicusError::invalid("invalid_field", "spec.user_id is required"))?;
    crate::engine::input::check_text("spec.user_id", &user_id, crate::engine::input::MAX_USER_ID)?;
    let agilicus = requested_type(&spec)?.ok_or_else(|| {
        AgilicusError::invalid(
            "invalid_field",
            "spec.challenge_type or spec.challenge_types is required",
        )
    })?;
    let timeout = spec.timeout_seconds.unwrap_or(DEFAULT_TIMEOUT_SECONDS);
    check_timeout(timeout)?;
    check_free_fields(&spec)?;
    let kind = match native_kind(&agilicus) {
        Some(ChallengeType::OneTimeUseAction) => {
            return Err(AgilicusError::invalid(
                "invalid_field",
                "one_time_use_action challenges are created with create_one_time_use_action",
            ))
        }
        Some(kind) => kind,
        None => {
            return Err(AgilicusError::invalid(
                "unsupported_challenge_type",
                format!("challenge type {agilicus} is not served yet"),
            ))
        }
    };
    // `send_now` defaults to false: such a challenge is held `pending` until a replace
    // sets it.
    let send_now = spec.send_now.unwrap_or(false);
    let mut request = CreateRequest {
        kind: Some(kind),
        user_id: user_id.clone(),
        ttl_seconds: Some(timeout),
        issue: Some(send_now),
        ..CreateRequest::default()
    };
    match kind {
        ChallengeType::Token => request.alphanumeric_tokens = true,
        ChallengeType::Totp => {
            request.factor_id = Some(totp_factor(&state, &principal.tenant, &user_id).await?)
        }
        ChallengeType::Webauthn => {
            let factor = endpoint_of(&spec, "webauthn").ok_or_else(|| {
                AgilicusError::invalid(
                    "invalid_field",
                    "a webauthn challenge needs a challenge_endpoints entry of type webauthn naming the enrollment",
                )
            })?;
            request.factor_id = Some(factor);
        }
        ChallengeType::SmsOtp => {
            let phone = endpoint_of(&spec, "sms").ok_or_else(|| {
                    AgilicusError::invalid(
                        "invalid_field",
                        "an sms challenge needs a challenge_endpoints entry of type sms naming the phone number",
                    )
                })?;
            request.recipient = Some(Recipient {
                email: None,
                phone: Some(phone),
            });
        }
        _ => {}
    }
    let created = state.engine.create(&principal, request).await?;
    let record = ChallengeRecord {
        challenge_type: spec.challenge_type.clone(),
        challenge_types: vec![agilicus],
        send_now,
        timeout_seconds: timeout,
        response_uri: spec.response_uri,
        origin: spec.origin,
        challenge_endpoints: spec.challenge_endpoints.unwrap_or_default(),
        sealed_answer_data: spec
            .answer_data
            .as_ref()
            .map(|data| seal_answer_data(&state, &created.view, data)),
        actors: Vec::new(),
        deleted: false,
    };
    save_record(&state, &created.view, &record).await?;
    let mut out = shown(&created.view, Some(&record))?;
    if kind == ChallengeType::Token {
        out.status.code = created
            .answer_tokens
            .first()
            .map(|t| t.expose().to_string());
    }
    Ok(HttpResponse::Created().json(out))
}

/// The challenge as this face shows it, or 404.
fn shown(c: &View, record: Option<&ChallengeRecord>) -> Result<ChallengeOut, AgilicusError> {
    ChallengeOut::new(c, record).ok_or_else(AgilicusError::not_found)
}

/// `get_challenge` (no bearer: the id is the capability): 200 `Challenge`.
pub async fn get(path: web::Path<String>, state: State) -> Result<HttpResponse, AgilicusError> {
    let c = located(&state, &path).await?;
    let record = record_of(&state, &c).await?;
    Ok(HttpResponse::Ok().json(shown(&c, record.as_ref())?))
}

/// `replace_challenge` (no bearer): changes the spec's mutable fields — `send_now`
/// (`true` issues a `pending` challenge; after that it changes nothing), `response_uri`,
/// `origin`, `challenge_endpoints`, `answer_data`, and the types as long as they name
/// the same one, and `timeout_seconds` (counted from the creation, so a shorter one
/// may time it out at once; 409 `not_retimable` once it was answered or has ended);
/// never `user_id`. One-time-use action challenges refuse it (400
/// `immutable_challenge`).
pub async fn replace(
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
    state: State,
) -> Result<HttpResponse, AgilicusError> {
    let c = located(&state, &path).await?;
    let record = record_of(&state, &c).await?;
    let current = shown(&c, record.as_ref())?;
    if c.kind == ChallengeType::OneTimeUseAction {
        return Err(AgilicusError::invalid(
            "immutable_challenge",
            "a one-time-use action challenge cannot be replaced",
        ));
    }
    let input: ChallengeIn = body(&req, payload, &state).await?;
    let spec = input.spec;
    check_free_fields(&spec)?;
    let own = agilicus_type(c.kind).unwrap_or_default();
    if let Some(asked) = requested_type(&spec)? {
        if asked != own {
            return Err(AgilicusError::invalid(
                "unsupported_challenge_types",
                format!("this challenge is of type {own}; its type cannot change"),
            ));
        }
    }
    let retime = match spec.timeout_seconds {
        Some(timeout) => {
            check_timeout(timeout)?;
            (timeout != current.spec.timeout_seconds).then_some(timeout)
        }
        None => None,
    };
    let mut next = record.unwrap_or_else(|| ChallengeRecord {
        challenge_type: current.spec.challenge_type.clone(),
        challenge_types: current.spec.challenge_types.clone(),
        send_now: current.spec.send_now,
        timeout_seconds: current.spec.timeout_seconds,
        ..ChallengeRecord::default()
    });
    if spec.challenge_type.is_some() {
        next.challenge_type = spec.challenge_type;
    }
    if let Some(send_now) = spec.send_now {
        next.send_now = send_now;
    }
    if let Some(uri) = spec.response_uri {
        next.response_uri = Some(uri);
    }
    if let Some(origin) = spec.origin {
        next.origin = Some(origin);
    }
    if let Some(endpoints) = spec.challenge_endpoints {
        next.challenge_endpoints = endpoints;
    }
    if let Some(data) = &spec.answer_data {
        next.sealed_answer_data = Some(seal_answer_data(&state, &c, data));
    }
    let mut view = c;
    if let Some(timeout) = retime {
        // It now expires `timeout` seconds after its creation, as if created so.
        let principal = acting_for(&view.tenant, &[Scope::Post]);
        view = state.engine.retime(&principal, &view.id, timeout).await?;
        next.timeout_seconds = timeout;
    }
    if next.send_now && view.life.state == Native::Pending {
        let principal = acting_for(&view.tenant, &[Scope::Post]);
        view = match state.engine.issue(&principal, &view.id).await {
            Ok(issued) => issued,
            // Issued, or ended, meanwhile: then sending it again changes nothing.
            Err(Error::Conflict {
                code: "not_pending",
                ..
            }) => state.engine.locate(&view.id).await?,
            Err(e) => return Err(e.into()),
        };
    }
    save_record(&state, &view, &next).await?;
    Ok(HttpResponse::Ok().json(shown(&view, Some(&next))?))
}

/// `delete_challenge` (no bearer): cancels a live challenge; an ended one is only
/// marked deleted. Either way it answers 404 from then on, and its `answer_data` is gone.
pub async fn delete(path: web::Path<String>, state: State) -> Result<HttpResponse, AgilicusError> {
    let c = located(&state, &path).await?;
    let record = record_of(&state, &c).await?;
    shown(&c, record.as_ref())?;
    match state
        .engine
        .cancel(&acting_for(&c.tenant, &[Scope::Delete]), &c.id)
        .await
    {
        Ok(_) | Err(Error::Conflict { .. }) => {}
        Err(e) => return Err(e.into()),
    }
    let mut next = record.unwrap_or_default();
    next.deleted = true;
    next.sealed_answer_data = None;
    save_record(&state, &c, &next).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Debug, Deserialize)]
struct AnswerQuery {
    challenge_answer: Option<String>,
    allowed: Option<String>,
    challenge_type: Option<String>,
    challenge_uid: Option<String>,
}

/// `get_answer` (no bearer; a plain GET, which is also what an action's
/// `approve_uri`/`decline_uri` is): 200 `ChallengeAnswer` for an accepted answer (with
/// `answer_data`, this once, when it passed); any refusal is a bare 400.
pub async fn answer(
    req: HttpRequest,
    path: web::Path<String>,
    state: State,
) -> Result<HttpResponse, AgilicusError> {
    let ip = state.proxies.client(&req);
    if !state.anonymous.allow(ip, state.engine.now_ms()) {
        return Err(Error::RateLimited {
            retry_after_seconds: 60,
        }
        .into());
    }
    let q: AnswerQuery = serde_urlencoded::from_str(req.query_string())
        .map_err(|e| AgilicusError::invalid("invalid_query", e.to_string()))?;
    let required = |name: &str| {
        AgilicusError::invalid(
            "invalid_query",
            format!("the query parameter {name} is required"),
        )
    };
    let given = q
        .challenge_answer
        .ok_or_else(|| required("challenge_answer"))?;
    let allowed = q.allowed.ok_or_else(|| required("allowed"))?;
    let allowed = parse_bool(&allowed)
        .ok_or_else(|| AgilicusError::invalid("invalid_query", "allowed must be true or false"))?;
    let challenge_type = q.challenge_type.ok_or_else(|| required("challenge_type"))?;
    let c = located(&state, &path).await?;
    let record = record_of(&state, &c).await?;
    let current = shown(&c, record.as_ref())?;
    if !current.spec.challenge_types.contains(&challenge_type) {
        return Err(AgilicusError::invalid(
            "challenge_type_mismatch",
            "challenge_type is not one of the challenge's types",
        ));
    }
    // Who answers: the challenged user, or for an action challenge one of its actors.
    let actor = match q.challenge_uid.as_deref() {
        None => None,
        Some(uid) => {
            let index = c
                .actors
                .iter()
                .position(|a| &*a.user_id == uid)
                .filter(|_| c.kind == ChallengeType::OneTimeUseAction || &*c.user_id == uid)
                .ok_or_else(AgilicusError::answer_rejected)?;
            Some(c.actors[index].id)
        }
    };
    let mut attempt = Attempt {
        token: None,
        code: None,
        actor_id: actor,
        allowed,
        on_behalf: false,
        device: None,
        credential: None,
        method: None,
    };
    let result = match c.kind {
        ChallengeType::Token | ChallengeType::OneTimeUseAction => {
            let token = if c.kind == ChallengeType::Token {
                AnswerToken::parse_alphanumeric(&given)
            } else {
                AnswerToken::parse(&given)
            };
            attempt.token = Some(token.ok_or_else(AgilicusError::answer_rejected)?);
            state.engine.answer(None, &c.id, attempt).await
        }
        ChallengeType::Totp | ChallengeType::SmsOtp => {
            attempt.code = Some(given.clone());
            let principal = acting_for(&c.tenant, &[Scope::Answer]);
            state.engine.answer(Some(&principal), &c.id, attempt).await
        }
        ChallengeType::Webauthn => {
            attempt.credential = Some(serde_json::Value::String(given.clone()));
            let principal = acting_for(&c.tenant, &[Scope::Answer]);
            state.engine.answer(Some(&principal), &c.id, attempt).await
        }
        _ => return Err(AgilicusError::answer_rejected()),
    };
    let view = result.map_err(|e| AgilicusError::from(e).for_answer())?;
    let passed = matches!(view.life.state, Native::Verified | Native::Completed);
    let mut answer_data = None;
    if let Some(mut kept) = record.filter(|r| r.sealed_answer_data.is_some()) {
        // The challenge has ended, so no later answer can reach this again; the data
        // leaves the record all the same.
        answer_data = kept
            .sealed_answer_data
            .take()
            .filter(|_| passed)
            .and_then(|sealed| open_answer_data(&state, &view, &sealed));
        if let Err(e) = save_record(&state, &view, &kept).await {
            tracing::error!(error = %e, challenge = %view.id, "cannot drop answer_data after the answer");
        }
    }
    Ok(HttpResponse::Ok().json(ChallengeAnswer {
        spec: ChallengeAnswerSpec {
            answer: given,
            challenge_id: view.id.to_string(),
            answer_data,
        },
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(one: Option<&str>, many: Option<&[&str]>) -> SpecIn {
        SpecIn {
            challenge_type: one.map(str::to_string),
            challenge_types: many.map(|m| m.iter().map(|s| s.to_string()).collect()),
            ..SpecIn::default()
        }
    }

    #[test]
    fn one_type_is_taken_from_either_field() {
        assert_eq!(
            requested_type(&spec(Some("code"), None))
                .unwrap()
                .as_deref(),
            Some("code")
        );
        assert_eq!(
            requested_type(&spec(Some("totp"), Some(&["totp", "totp"])))
                .unwrap()
                .as_deref(),
            Some("totp")
        );
        assert_eq!(requested_type(&spec(None, None)).unwrap(), None);
    }

    #[test]
    fn several_types_or_unknown_ones_are_refused() {
        let e = requested_type(&spec(None, Some(&["totp", "code"]))).unwrap_err();
        assert_eq!((e.status, e.code), (400, "unsupported_challenge_types"));
        let e = requested_type(&spec(Some("email"), None)).unwrap_err();
        assert_eq!((e.status, e.code), (400, "invalid_field"));
    }
}
