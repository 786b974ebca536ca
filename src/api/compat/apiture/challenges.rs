//! The handlers of `/auth/…`: authenticate and parse the Apiture shape, make the engine
//! call, render the HAL reply. See the module doc of `compat::apiture` for how a
//! challenge and its authenticators land on the engine.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Value};

use super::errors::{self, ApitureError};
use super::{authenticate, dto, load, make_current, reload, require, retire, with_scope};
use crate::api::State;
use crate::auth::Scope;
use crate::challenge::kinds::token::Attempt;
use crate::engine::methods::MethodRequest;
use crate::engine::{CreateRequest, Error, Recipient, View};
use crate::factors::{FactorStatus, FactorType};
use crate::model::{ChallengeType, FactorId, Method, MethodId, State as ChallengeState};

/// Every type name and category `include` and `exclude` may name.
const TYPES: [ChallengeType; 5] = [
    ChallengeType::SmsOtp,
    ChallengeType::EmailOtp,
    ChallengeType::Totp,
    ChallengeType::Push,
    ChallengeType::Webauthn,
];

/// The types this server can offer as authenticators: `sms` and `email` when their
/// transport is configured, `totp` and `push` (answered by an enrolled factor). A
/// `webauthn` authenticator is not offered: a WebAuthn challenge is not one of several
/// methods.
fn served(state: &State) -> Vec<ChallengeType> {
    let s = &state.settings;
    let mut types = Vec::new();
    if !s.sms.gateway_url.is_empty() {
        types.push(ChallengeType::SmsOtp);
    }
    if !s.email.smtp_host.is_empty() {
        types.push(ChallengeType::EmailOtp);
    }
    types.push(ChallengeType::Totp);
    types.push(ChallengeType::Push);
    types
}

/// `GET /auth/authenticatorTypes`
pub async fn types(req: HttpRequest, state: State) -> Result<HttpResponse, ApitureError> {
    authenticate(&req, &state)?;
    let items: Vec<Value> = served(&state).into_iter().map(dto::type_body).collect();
    Ok(HttpResponse::Ok().json(json!({
        "count": items.len(),
        "_embedded": {"items": items},
        "_links": {"self": {"href": "/auth/authenticatorTypes"}},
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateQuery {
    include: Option<String>,
    exclude: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct CreateChallenge {
    user_id: String,
    reason: Option<String>,
    channels: Option<Channels>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Channels {
    email: Option<String>,
    phone: Option<String>,
    factor_ids: Option<Vec<String>>,
}

/// The types a comma-separated `include`/`exclude` names, by type name or category;
/// 400 `unknownAuthenticatorType` for a value that is neither.
fn named(field: &str, raw: Option<&str>) -> Result<Option<Vec<ChallengeType>>, ApitureError> {
    let Some(raw) = raw else {
        return Ok(None);
    };
    let mut kinds = Vec::new();
    let values: Vec<&str> = raw
        .split(',')
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .collect();
    if values.is_empty() {
        // `?include=` names nothing: as if absent.
        return Ok(None);
    }
    for value in values {
        let matching: Vec<ChallengeType> = TYPES
            .into_iter()
            .filter(|k| dto::type_of(*k).is_some_and(|(n, c)| n == value || c == value))
            .collect();
        if matching.is_empty() {
            return Err(ApitureError::invalid(
                errors::UNKNOWN_TYPE,
                format!("{field}: {value:?} is neither an authenticator type nor a category"),
            ));
        }
        kinds.extend(matching);
    }
    Ok(Some(kinds))
}

fn channels_error(message: impl Into<String>) -> ApitureError {
    ApitureError::invalid(errors::INVALID_CHANNELS, message)
}

/// Creates the challenge a `createChallenge` request asks for and makes it the user's
/// current one, cancelling the one it replaces.
async fn create_challenge(
    req: &HttpRequest,
    payload: web::Payload,
    state: &State,
) -> Result<View, ApitureError> {
    let principal = authenticate(req, state)?;
    require(&principal, Scope::Post)?;
    let q: CreateQuery = crate::api::query(req)?;
    let include = named("include", q.include.as_deref())?;
    let exclude = named("exclude", q.exclude.as_deref())?.unwrap_or_default();
    let body = crate::api::json_body(req, payload, state.settings.server.body_limit_bytes).await?;
    let request: CreateChallenge = crate::api::parse_json(&body)?;
    if request.user_id.is_empty() {
        return Err(ApitureError::invalid(
            errors::INVALID_REQUEST,
            "userId must not be empty",
        ));
    }
    let channels = request.channels.unwrap_or_default();
    let served = served(state);
    let mut methods: Vec<MethodRequest> = Vec::new();
    let mut offer = |kind: ChallengeType, m: MethodRequest| -> Result<(), ApitureError> {
        if methods.iter().any(|o| o.kind == Some(kind)) {
            return Err(channels_error(format!(
                "factorIds names two {} factors; a challenge offers each type once",
                dto::type_of(kind).map_or("", |t| t.0)
            )));
        }
        let wanted = include.as_ref().is_none_or(|i| i.contains(&kind)) && !exclude.contains(&kind);
        if wanted && served.contains(&kind) {
            methods.push(m);
        }
        Ok(())
    };
    if let Some(phone) = &channels.phone {
        offer(
            ChallengeType::SmsOtp,
            MethodRequest {
                kind: Some(ChallengeType::SmsOtp),
                recipient: Some(Recipient {
                    phone: Some(phone.clone()),
                    email: None,
                }),
                ..MethodRequest::default()
            },
        )?;
    }
    if let Some(email) = &channels.email {
        offer(
            ChallengeType::EmailOtp,
            MethodRequest {
                kind: Some(ChallengeType::EmailOtp),
                recipient: Some(Recipient {
                    email: Some(email.clone()),
                    phone: None,
                }),
                ..MethodRequest::default()
            },
        )?;
    }
    for raw in channels.factor_ids.iter().flatten() {
        let unknown = || channels_error(format!("factorIds: {raw:?} names no factor of the user"));
        let id = FactorId::parse(raw).ok_or_else(unknown)?;
        let (factor_type, status) = match state
            .engine
            .factor_for_create(&principal, request.user_id.clone(), id)
            .await
        {
            Ok(found) => found,
            Err(Error::FactorNotFound) => return Err(unknown()),
            Err(e) => return Err(e.into()),
        };
        if status != FactorStatus::Verified {
            return Err(channels_error(format!(
                "factorIds: factor {raw} is not verified yet"
            )));
        }
        let kind = match factor_type {
            FactorType::Totp => ChallengeType::Totp,
            FactorType::Push => ChallengeType::Push,
            FactorType::Webauthn => {
                return Err(channels_error(format!(
                    "factorIds: factor {raw} is a webauthn factor, which this server does not offer as an authenticator"
                )))
            }
        };
        offer(
            kind,
            MethodRequest {
                kind: Some(kind),
                factor_id: Some(raw.clone()),
                ..MethodRequest::default()
            },
        )?;
    }
    if methods.is_empty() {
        return Err(ApitureError::invalid(
            errors::NO_AUTHENTICATORS,
            "no authenticator type is left for this user: give channels this server can serve, or loosen include/exclude",
        ));
    }
    let hidden_details = request.reason.as_ref().map(|reason| {
        let mut map = serde_json::Map::new();
        map.insert(dto::REASON_KEY.into(), reason.clone().into());
        map
    });
    // A push authenticator shows its device a message: the reason, or a plain request.
    let details = methods
        .iter()
        .any(|m| m.kind == Some(ChallengeType::Push))
        .then(|| crate::model::Details {
            message: Some(
                request
                    .reason
                    .clone()
                    .unwrap_or_else(|| "Approve this request?".to_string()),
            ),
            fields: Vec::new(),
        });
    let created = state
        .engine
        .create(
            &principal,
            CreateRequest {
                user_id: request.user_id.clone(),
                hidden_details,
                details,
                methods: Some(methods),
                ..CreateRequest::default()
            },
        )
        .await?;
    let view = created.view;
    match make_current(state, &principal, &request.user_id, view.id).await {
        Ok(Some(replaced)) if replaced != view.id => retire(state, &principal, replaced).await,
        Ok(_) => {}
        Err(e) => {
            // Not the user's current challenge: nobody can use it here.
            retire(state, &principal, view.id).await;
            return Err(e);
        }
    }
    Ok(view)
}

/// `POST /auth/challenges?include=&exclude=` → 201 with the challenge.
pub async fn create(
    req: HttpRequest,
    payload: web::Payload,
    state: State,
) -> Result<HttpResponse, ApitureError> {
    let view = create_challenge(&req, payload, &state).await?;
    Ok(HttpResponse::Created().json(dto::challenge(&view)))
}

/// `POST /auth/challengeRequired?include=&exclude=`: creates the challenge as
/// `POST /auth/challenges` does, and answers 201 with the body an integrating service
/// returns, as is, with a 401 to its own client:
/// `{"_error": {"type": "challengeRequired", …, "_embedded": {"challenge": …}}}`.
pub async fn step_up(
    req: HttpRequest,
    payload: web::Payload,
    state: State,
) -> Result<HttpResponse, ApitureError> {
    let view = create_challenge(&req, payload, &state).await?;
    let mut error = ApitureError::body(
        errors::CHALLENGE_REQUIRED,
        "this operation requires the user to verify a challenge; retry it with the Apiture-Challenge header once the challenge is verified",
    );
    error.insert(
        "_embedded".into(),
        json!({"challenge": dto::challenge(&view)}),
    );
    Ok(HttpResponse::Created().json(json!({"_error": error})))
}

/// `GET /auth/challenges/{challengeId}`
pub async fn get(
    req: HttpRequest,
    path: web::Path<String>,
    state: State,
) -> Result<HttpResponse, ApitureError> {
    let principal = authenticate(&req, &state)?;
    require(&principal, Scope::Get)?;
    let view = load(&state, &principal, &path).await?;
    Ok(HttpResponse::Ok().json(dto::challenge(&view)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ListQuery {
    user_id: Option<String>,
}

/// `GET /auth/challenges?userId=`: the user's challenge, if there is one (a user has
/// at most one).
pub async fn list(req: HttpRequest, state: State) -> Result<HttpResponse, ApitureError> {
    let principal = authenticate(&req, &state)?;
    require(&principal, Scope::Get)?;
    let q: ListQuery = crate::api::query(&req)?;
    let user_id = q.user_id.filter(|u| !u.is_empty()).ok_or_else(|| {
        ApitureError::invalid(
            errors::INVALID_REQUEST,
            "the userId query parameter is required",
        )
    })?;
    let mut items = Vec::new();
    if let Some(id) = super::current(&state, &principal, &user_id).await? {
        match load(&state, &principal, &id.to_string()).await {
            Ok(view) if *view.user_id == *user_id => items.push(dto::challenge(&view)),
            Ok(_) => {}
            Err(e) if e.status == 404 => {}
            Err(e) => return Err(e),
        }
    }
    Ok(HttpResponse::Ok().json(json!({
        "count": items.len(),
        "_embedded": {"items": items},
        "_links": {"self": {"href": format!("/auth/challenges?userId={}", urlencoding(&user_id))}},
    })))
}

/// Percent-encodes a query value.
fn urlencoding(value: &str) -> String {
    serde_urlencoded::to_string([("v", value)])
        .map(|s| s[2..].to_string())
        .unwrap_or_default()
}

/// The method `raw` of `view`, or 404 `authenticatorNotFound`.
fn method_of<'a>(view: &'a View, raw: &str) -> Result<&'a Method, ApitureError> {
    let id = MethodId::parse(raw).ok_or_else(ApitureError::authenticator_not_found)?;
    view.methods()
        .iter()
        .find(|m| m.id == id)
        .ok_or_else(ApitureError::authenticator_not_found)
}

/// `GET /auth/challenges/{challengeId}/authenticators/{authenticatorId}`
pub async fn authenticator(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    state: State,
) -> Result<HttpResponse, ApitureError> {
    let principal = authenticate(&req, &state)?;
    require(&principal, Scope::Get)?;
    let (id, authenticator) = path.into_inner();
    let view = load(&state, &principal, &id).await?;
    let m = method_of(&view, &authenticator)?;
    Ok(HttpResponse::Ok().json(dto::authenticator(&view, m)))
}

/// The method of `view` with id `id`, rendered.
fn rendered(view: &View, id: MethodId) -> Value {
    view.methods()
        .iter()
        .find(|m| m.id == id)
        .map(|m| dto::authenticator(view, m))
        .unwrap_or(Value::Null)
}

/// `POST …/authenticators/{authenticatorId}/starts` (`challenge:answer`): sends its
/// code. A `totp` authenticator has nothing to send and is started already; one that
/// cannot be started (its challenge ended, it failed, its resends are used up) is 409
/// `authenticatorNotCompletable`.
pub async fn start(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    state: State,
) -> Result<HttpResponse, ApitureError> {
    let principal = authenticate(&req, &state)?;
    require(&principal, Scope::Answer)?;
    let (id, authenticator) = path.into_inner();
    let view = load(&state, &principal, &id).await?;
    let m = method_of(&view, &authenticator)?;
    let method = m.id;
    let not_completable =
        |message: String| ApitureError::new(409, errors::NOT_COMPLETABLE, message);
    match view.life.state {
        ChallengeState::Expired => return Err(expired()),
        ChallengeState::Issued => {}
        other => {
            return Err(not_completable(format!(
                "the challenge is {}: its authenticators cannot be started",
                dto::challenge_state(other)
            )))
        }
    }
    let started = state
        .engine
        .start_method(&with_scope(&principal, Scope::Resend), &view.id, method)
        .await;
    match started {
        Ok(after) => Ok(HttpResponse::Ok().json(rendered(&after, method))),
        Err(Error::Conflict {
            code: "not_deliverable",
            ..
        }) if m.started() => Ok(HttpResponse::Ok().json(rendered(&view, method))),
        Err(Error::Conflict {
            code: "expired", ..
        }) => Err(expired()),
        Err(Error::Conflict {
            code: "not_startable" | "not_deliverable" | "resend_limit",
            message,
        }) => Err(not_completable(message)),
        Err(e) => Err(e.into()),
    }
}

fn expired() -> ApitureError {
    ApitureError::new(409, errors::EXPIRED, "the challenge has expired")
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Verification {
    attributes: Option<Attributes>,
}

#[derive(Deserialize)]
struct Attributes {
    code: Option<String>,
}

/// `POST …/authenticators/{authenticatorId}/verifications` with
/// `{"attributes": {"code": "…"}}` (`challenge:answer`): 200 with the authenticator —
/// `verified`, or still `started` with `attempts` one more — or 409
/// `authenticatorAttemptsExceeded` once its attempts are used up.
pub async fn verify(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    payload: web::Payload,
    state: State,
) -> Result<HttpResponse, ApitureError> {
    let principal = authenticate(&req, &state)?;
    require(&principal, Scope::Answer)?;
    let (id, authenticator) = path.into_inner();
    let body = crate::api::json_body(&req, payload, state.settings.server.body_limit_bytes).await?;
    let request: Verification = crate::api::parse_json(&body)
        .map_err(|e| ApitureError::invalid(errors::INVALID_ATTRIBUTES, e.to_string()))?;
    let code = request
        .attributes
        .and_then(|a| a.code)
        .filter(|c| !c.is_empty())
        .ok_or_else(|| {
            ApitureError::invalid(errors::INVALID_ATTRIBUTES, "attributes.code is required")
        })?;
    let view = load(&state, &principal, &id).await?;
    let method = method_of(&view, &authenticator)?.id;
    let attempt = Attempt {
        token: None,
        code: Some(code),
        actor_id: None,
        allowed: true,
        on_behalf: true,
        device: None,
        credential: None,
        method: Some(method),
    };
    match state
        .engine
        .answer(Some(&principal), &view.id, attempt)
        .await
    {
        Ok(after) => Ok(HttpResponse::Ok().json(rendered(&after, method))),
        Err(Error::WrongAnswer { attempts_left }) if attempts_left > 0 => {
            let after = reload(&state, &principal, &view.id).await?;
            Ok(HttpResponse::Ok().json(rendered(&after, method)))
        }
        Err(Error::WrongAnswer { .. }) => Err(attempts_exceeded()),
        Err(Error::Invalid {
            code: "device_answer_required",
            ..
        }) => Err(ApitureError::new(
            409,
            errors::INVALID_STATE,
            "a push authenticator is answered on the user's device",
        )),
        Err(Error::Invalid { message, .. }) => {
            Err(ApitureError::invalid(errors::INVALID_ATTRIBUTES, message))
        }
        Err(e) => Err(e.into()),
    }
}

fn attempts_exceeded() -> ApitureError {
    ApitureError::new(
        409,
        errors::ATTEMPTS_EXCEEDED,
        "the authenticator failed: its attempts are used up",
    )
}

/// The header naming the challenge a retried operation redeems.
pub const CHALLENGE_HEADER: &str = "apiture-challenge";

/// `POST /auth/challenges/{challengeId}/redemptions` with `Apiture-Challenge:
/// {challengeId}` (`challenge:complete`): 200 the first time on a verified challenge
/// (native complete), exactly once. A redemption that found the challenge verified and
/// lost to a concurrent one is 409 `redeemChallengeConflict`; one that finds it redeemed
/// already is 409 `challengedAlreadyRedeemed`.
pub async fn redeem(
    req: HttpRequest,
    path: web::Path<String>,
    state: State,
) -> Result<HttpResponse, ApitureError> {
    let principal = authenticate(&req, &state)?;
    require(&principal, Scope::Complete)?;
    let named = req
        .headers()
        .get(CHALLENGE_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| {
            ApitureError::new(
                401,
                errors::MISSING_HEADER,
                "the Apiture-Challenge header must name the challenge",
            )
        })?;
    if named != path.as_str() {
        return Err(ApitureError::invalid(
            errors::CHALLENGE_REF_NOT_FOUND,
            "the Apiture-Challenge header names another challenge than the path",
        ));
    }
    let view = load(&state, &principal, &path).await?;
    refuse_unredeemable(view.life.state)?;
    match state.engine.complete(&principal, &view.id).await {
        Ok(after) => Ok(HttpResponse::Ok().json(dto::challenge(&after))),
        Err(Error::Conflict {
            code: "not_completable" | "expired",
            ..
        }) => {
            let after = reload(&state, &principal, &view.id).await?;
            match after.life.state {
                ChallengeState::Completed => Err(ApitureError::new(
                    409,
                    errors::REDEEM_CONFLICT,
                    "a concurrent request redeemed the challenge first",
                )),
                other => {
                    refuse_unredeemable(other)?;
                    Err(Error::Internal.into())
                }
            }
        }
        Err(e) => Err(e.into()),
    }
}

/// 409 unless the challenge is verified.
fn refuse_unredeemable(state: ChallengeState) -> Result<(), ApitureError> {
    match state {
        ChallengeState::Verified => Ok(()),
        ChallengeState::Completed => Err(ApitureError::new(
            409,
            errors::ALREADY_REDEEMED,
            "the challenge was redeemed already",
        )),
        ChallengeState::Expired => Err(expired()),
        other => Err(ApitureError::new(
            409,
            errors::NOT_VERIFIED,
            format!(
                "the challenge is {}, not verified",
                dto::challenge_state(other)
            ),
        )),
    }
}
