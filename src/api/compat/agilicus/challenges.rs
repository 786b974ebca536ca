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
//! - `web_push` is a `push` challenge on the push factor a `challenge_endpoints` entry of
//!   type `web_push` names, else on the user's most recently verified one: announced to
//!   the push gateway when issued, answered by that device with its signed decision (the
//!   native or Twilio device routes), never through `get_answer`;
//! - `one_time_use_action` is made by `actions.rs`.
//!
//! A challenge whose `challenge_types` name several of `code`, `sms`, `totp` and
//! `web_push` is one native challenge offering one method per type: the first accepted
//! answer through any of them decides it, and `get_answer`'s `challenge_type` says
//! which method it answers. Its `sms` and `web_push` methods are started when it is
//! issued.

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
use crate::engine::methods::MethodRequest;
use crate::engine::{CreateRequest, Error, Recipient, View};
use crate::factors::{FactorStatus, FactorType};
use crate::model::{AnswerToken, ChallengeType, DetailField, Details, State as Native};

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

/// The types that may share one challenge: each is a native method (`engine::methods`).
const COMBINABLE: [&str; 4] = ["code", "sms", "totp", "web_push"];

/// The distinct Agilicus types a spec asks for (`challenge_types`, then
/// `challenge_type`), in the order given: 400 for an unknown one, or for several of
/// which one cannot be combined with others (`webauthn`, `one_time_use_action`).
pub fn requested_types(spec: &SpecIn) -> Result<Vec<String>, AgilicusError> {
    let mut named: Vec<String> = Vec::new();
    for t in spec
        .challenge_types
        .iter()
        .flatten()
        .chain(spec.challenge_type.as_ref())
    {
        if !TYPES.contains(&t.as_str()) {
            return Err(AgilicusError::invalid(
                "invalid_field",
                format!("challenge type {t:?} is not one of {}", TYPES.join(", ")),
            ));
        }
        if !named.contains(t) {
            named.push(t.clone());
        }
    }
    if named.len() > 1 {
        if let Some(alone) = named.iter().find(|t| !COMBINABLE.contains(&t.as_str())) {
            return Err(AgilicusError::invalid(
                "unsupported_challenge_types",
                format!(
                    "a {alone} challenge takes no other type; several types may be any of {}",
                    COMBINABLE.join(", ")
                ),
            ));
        }
    }
    Ok(named)
}

/// True when `a` and `b` name the same types, in any order.
fn same_types(a: &[String], b: &[String]) -> bool {
    a.len() == b.len() && a.iter().all(|t| b.contains(t))
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

/// The user's factor of `kind` a `totp` or `web_push` challenge is answered with: the
/// most recently verified one; 400 `no_enrolled_factor` without any.
async fn latest_factor(
    state: &State,
    tenant: &crate::model::TenantId,
    user_id: &str,
    kind: FactorType,
) -> Result<String, AgilicusError> {
    let principal = acting_for(tenant, &[Scope::EnrollmentGet]);
    let (factors, _) = state
        .engine
        .factors(&principal, user_id.to_string(), None, 1000)
        .await?;
    factors
        .iter()
        .filter(|f| f.kind() == kind && f.status == FactorStatus::Verified)
        .max_by_key(|f| f.updated_at)
        .map(|f| f.id.to_string())
        .ok_or_else(|| {
            let what = match kind {
                FactorType::Totp => "TOTP enrollment",
                _ => "push device",
            };
            AgilicusError::invalid(
                "no_enrolled_factor",
                format!("the user has no verified {what}"),
            )
        })
}

/// What a `web_push` challenge shows on the device: a fixed question, and the spec's
/// `origin` as a field when it fits the push bounds.
fn push_details(spec: &SpecIn) -> Details {
    use crate::challenge::kinds::push::MAX_VALUE;
    let fields = spec
        .origin
        .iter()
        .filter(|o| !o.is_empty() && o.chars().count() <= MAX_VALUE)
        .map(|o| DetailField {
            label: "Origin".to_string(),
            value: o.clone(),
        })
        .collect();
    Details {
        message: Some("Approve this sign-in request?".into()),
        fields,
    }
}

/// Where each type's answer comes from, as the engine takes it for a challenge (or a
/// method) of that type: the recipient of `sms`, the factor of `totp`, `webauthn` and
/// `web_push`.
struct Target {
    recipient: Option<Recipient>,
    factor_id: Option<String>,
}

async fn target(
    state: &State,
    tenant: &crate::model::TenantId,
    user_id: &str,
    spec: &SpecIn,
    kind: ChallengeType,
) -> Result<Target, AgilicusError> {
    let mut target = Target {
        recipient: None,
        factor_id: None,
    };
    match kind {
        ChallengeType::Totp => {
            target.factor_id = Some(latest_factor(state, tenant, user_id, FactorType::Totp).await?)
        }
        ChallengeType::Push => {
            target.factor_id = Some(match endpoint_of(spec, "web_push") {
                Some(named) => named,
                None => latest_factor(state, tenant, user_id, FactorType::Push).await?,
            })
        }
        ChallengeType::Webauthn => {
            let factor = endpoint_of(spec, "webauthn").ok_or_else(|| {
                AgilicusError::invalid(
                    "invalid_field",
                    "a webauthn challenge needs a challenge_endpoints entry of type webauthn naming the enrollment",
                )
            })?;
            target.factor_id = Some(factor);
        }
        ChallengeType::SmsOtp => {
            let phone = endpoint_of(spec, "sms").ok_or_else(|| {
                AgilicusError::invalid(
                    "invalid_field",
                    "an sms challenge needs a challenge_endpoints entry of type sms naming the phone number",
                )
            })?;
            target.recipient = Some(Recipient {
                email: None,
                phone: Some(phone),
            });
        }
        _ => {}
    }
    Ok(target)
}

/// Starts the methods of an issued challenge that go out to the user (`sms`, `web_push`):
/// the code is sent, the device shown the request. One that cannot be started is logged
/// and left; the challenge stays answerable through the others.
async fn start_methods(state: &State, view: View) -> View {
    let mut view = view;
    if view.life.state != Native::Issued {
        return view;
    }
    let principal = acting_for(&view.tenant, &[Scope::Resend]);
    let waiting: Vec<_> = view
        .methods()
        .iter()
        .filter(|m| !m.started() && matches!(m.kind, ChallengeType::SmsOtp | ChallengeType::Push))
        .map(|m| m.id)
        .collect();
    for method in waiting {
        match state
            .engine
            .start_method(&principal, &view.id, method)
            .await
        {
            Ok(started) => view = started,
            Err(e) => {
                tracing::warn!(error = %e, challenge = %view.id, "an Agilicus challenge's method could not be started")
            }
        }
    }
    view
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
    let types = requested_types(&spec)?;
    if types.is_empty() {
        return Err(AgilicusError::invalid(
            "invalid_field",
            "spec.challenge_type or spec.challenge_types is required",
        ));
    }
    let timeout = spec.timeout_seconds.unwrap_or(DEFAULT_TIMEOUT_SECONDS);
    check_timeout(timeout)?;
    check_free_fields(&spec)?;
    let mut kinds = Vec::with_capacity(types.len());
    for agilicus in &types {
        kinds.push(match native_kind(agilicus) {
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
                    format!("challenge type {agilicus} is not served"),
                ))
            }
        });
    }
    // `send_now` defaults to false: such a challenge is held `pending` until a replace
    // sets it.
    let send_now = spec.send_now.unwrap_or(false);
    let mut request = CreateRequest {
        user_id: user_id.clone(),
        ttl_seconds: Some(timeout),
        issue: Some(send_now),
        alphanumeric_tokens: kinds.contains(&ChallengeType::Token),
        details: kinds
            .contains(&ChallengeType::Push)
            .then(|| push_details(&spec)),
        ..CreateRequest::default()
    };
    if let [kind] = kinds[..] {
        let target = target(&state, &principal.tenant, &user_id, &spec, kind).await?;
        request.kind = Some(kind);
        request.recipient = target.recipient;
        request.factor_id = target.factor_id;
    } else {
        let mut methods = Vec::with_capacity(kinds.len());
        for &kind in &kinds {
            let target = target(&state, &principal.tenant, &user_id, &spec, kind).await?;
            methods.push(MethodRequest {
                kind: Some(kind),
                recipient: target.recipient,
                factor_id: target.factor_id,
                locale: None,
            });
        }
        request.methods = Some(methods);
    }
    let created = state
        .engine
        .create(&principal, request)
        .await
        .map_err(|e| match e {
            // The factor an endpoint names is not one of the user's.
            Error::FactorNotFound => AgilicusError::invalid(
                "unknown_endpoint",
                "challenge_endpoints names no enrollment of the user",
            ),
            e => e.into(),
        })?;
    let code = match kinds[..] {
        [ChallengeType::Token] => created.answer_tokens.first(),
        _ => created
            .view
            .methods()
            .iter()
            .find(|m| m.kind == ChallengeType::Token)
            .and_then(|m| created.method_tokens.iter().find(|(id, _)| *id == m.id))
            .and_then(|(_, tokens)| tokens.first()),
    }
    .map(|t| t.expose().to_string());
    let view = start_methods(&state, created.view.clone()).await;
    let record = ChallengeRecord {
        challenge_type: spec.challenge_type.clone(),
        challenge_types: types,
        send_now,
        timeout_seconds: timeout,
        response_uri: spec.response_uri,
        origin: spec.origin,
        challenge_endpoints: spec.challenge_endpoints.unwrap_or_default(),
        sealed_answer_data: spec
            .answer_data
            .as_ref()
            .map(|data| seal_answer_data(&state, &view, data)),
        actors: Vec::new(),
        deleted: false,
    };
    save_record(&state, &view, &record).await?;
    let mut out = shown(&view, Some(&record))?;
    out.status.code = code;
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
    let asked = requested_types(&spec)?;
    if !asked.is_empty() && !same_types(&asked, &current.spec.challenge_types) {
        return Err(AgilicusError::invalid(
            "unsupported_challenge_types",
            format!(
                "this challenge is of type {}; its types cannot change",
                current.spec.challenge_types.join(", ")
            ),
        ));
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
        view = start_methods(&state, view).await;
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
    // A challenge of several types: the method of the type named answers.
    let kind = if c.methods().is_empty() {
        c.kind
    } else {
        let wanted = native_kind(&challenge_type);
        let method = c
            .methods()
            .iter()
            .find(|m| Some(m.kind) == wanted)
            .ok_or_else(AgilicusError::answer_rejected)?;
        attempt.method = Some(method.id);
        method.kind
    };
    let result = match kind {
        ChallengeType::Token | ChallengeType::OneTimeUseAction => {
            let token = if kind == ChallengeType::Token {
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
        // `web_push` is answered by its device, with a signature; nothing else.
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
    fn types_are_taken_from_both_fields_once_each_in_order() {
        assert_eq!(
            requested_types(&spec(Some("code"), None)).unwrap(),
            ["code"]
        );
        assert_eq!(
            requested_types(&spec(Some("totp"), Some(&["totp", "totp"]))).unwrap(),
            ["totp"]
        );
        assert_eq!(
            requested_types(&spec(Some("code"), Some(&["web_push", "totp", "web_push"]))).unwrap(),
            ["web_push", "totp", "code"]
        );
        assert!(requested_types(&spec(None, None)).unwrap().is_empty());
        assert!(same_types(
            &["totp".into(), "code".into()],
            &["code".into(), "totp".into()]
        ));
        assert!(!same_types(
            &["totp".into()],
            &["code".into(), "totp".into()]
        ));
    }

    #[test]
    fn types_that_cannot_share_a_challenge_or_unknown_ones_are_refused() {
        for alone in ["webauthn", "one_time_use_action"] {
            let e = requested_types(&spec(None, Some(&["totp", alone]))).unwrap_err();
            assert_eq!((e.status, e.code), (400, "unsupported_challenge_types"));
        }
        let e = requested_types(&spec(Some("email"), None)).unwrap_err();
        assert_eq!((e.status, e.code), (400, "invalid_field"));
        let e = requested_types(&spec(Some("code"), Some(&["sms", "bogus"]))).unwrap_err();
        assert_eq!((e.status, e.code), (400, "invalid_field"));
    }

    #[test]
    fn a_push_shows_the_origin_when_it_fits() {
        let mut s = spec(Some("web_push"), None);
        assert!(push_details(&s).fields.is_empty());
        assert!(push_details(&s).message.is_some());
        s.origin = Some("portal.example".into());
        assert_eq!(push_details(&s).fields[0].value, "portal.example");
        s.origin = Some("x".repeat(200));
        assert!(push_details(&s).fields.is_empty());
    }
}
