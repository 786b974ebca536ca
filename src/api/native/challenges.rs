//! `/api/v1/challenges`: each handler authenticates and parses the native wire format
//! into domain values, makes one engine call, and renders the reply.

use std::time::Duration;

use actix_web::{web, HttpRequest, HttpResponse};

use super::dto::*;
use crate::api::error::ErrorBody;
use crate::api::{authenticate, bearer, json_body, parse_json, query, ApiError, State};
use crate::challenge::kinds::token::Attempt;
use crate::engine::View;
use crate::model::{
    ActorId, AnswerToken, ChallengeId, ChallengeType, MethodId, State as ChallengeState,
};
use crate::store::ListFilter;

pub(crate) fn challenge_id(raw: &str) -> Result<ChallengeId, ApiError> {
    ChallengeId::parse(raw).ok_or(crate::engine::Error::ChallengeNotFound.into())
}

fn method_id(raw: &str) -> Result<MethodId, ApiError> {
    MethodId::parse(raw).ok_or(crate::engine::Error::MethodNotFound.into())
}

fn state_param(field: &str, raw: &str) -> Result<ChallengeState, ApiError> {
    ChallengeState::parse(raw).ok_or_else(|| {
        ApiError::invalid("invalid_query", format!("{field} is not a challenge state"))
    })
}

/// Create a challenge.
#[utoipa::path(post, path = "/api/v1/challenges", tag = "challenges",
    request_body = CreateChallenge,
    params(("Idempotency-Key" = Option<String>, Header, description = "same key + same body → same challenge")),
    responses(
        (status = 201, description = "created; answer tokens appear here only", body = ChallengeDto),
        (status = 200, description = "idempotent replay of an earlier create (no answer tokens)", body = ChallengeDto),
        (status = 400, description = "invalid input (invalid_field, field_too_long, …); or what the document cannot know: a bound the tenant's configuration or the policy lowers (ttl_out_of_range, max_attempts_out_of_range), the policy's type (policy_type_mismatch), its conditions (recipient_not_allowed), the outbound URL policy (url_not_allowed), the allowed action scopes (scope_not_allowed), the factor's type (factor_type_mismatch)", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, description = "policy_not_found, factor_not_found", body = ErrorBody),
        (status = 409, description = "idempotency_conflict, factor_not_verified", body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 429, description = "quota_exceeded, recipient_limit", body = ErrorBody)),
    security(("bearer" = ["challenge:post"])))]
pub async fn create(
    req: HttpRequest,
    payload: web::Payload,
    state: State,
) -> Result<HttpResponse, ApiError> {
    let principal = authenticate(&req, &state)?;
    let body = json_body(&req, payload, state.settings.server.body_limit_bytes).await?;
    let request: CreateChallenge = parse_json(&body)?;
    let (replayed, dto) = create_challenge(&req, &state, &principal, request, None).await?;
    if replayed {
        return Ok(HttpResponse::Ok()
            .insert_header(("Idempotent-Replayed", "true"))
            .json(dto));
    }
    Ok(HttpResponse::Created().json(dto))
}

/// The create of this API and of the faces that speak its model in other names (ACS):
/// the idempotency key from the `Idempotency-Key` header or the body (they must agree),
/// one engine call for a kind of `only_kinds` (`None`: any), and the challenge as this
/// API shows it — with answer tokens and answer pages when it is new. `true` with a
/// replay.
pub(crate) async fn create_challenge(
    req: &HttpRequest,
    state: &State,
    principal: &crate::auth::Principal,
    mut request: CreateChallenge,
    only_kinds: Option<&'static [ChallengeType]>,
) -> Result<(bool, ChallengeDto), ApiError> {
    let header_key = req
        .headers()
        .get("idempotency-key")
        .map(|v| v.to_str().map(str::to_string))
        .transpose()
        .map_err(|_| {
            ApiError::invalid("invalid_header", "Idempotency-Key must be visible ASCII")
        })?;
    let idempotency_key = match (header_key, request.idempotency_key.take()) {
        (Some(h), Some(b)) if h != b => {
            return Err(ApiError::invalid(
                "invalid_field",
                "idempotency_key differs from the Idempotency-Key header",
            ))
        }
        (h, b) => h.or(b),
    };
    let mut engine_request = request.into_request(idempotency_key);
    engine_request.only_kinds = only_kinds;
    let created = state.engine.create(principal, engine_request).await?;
    if created.replayed {
        return Ok((true, ChallengeDto::new(&created.view, None)));
    }
    let tokens = &created.answer_tokens;
    let mut dto = ChallengeDto::new(&created.view, Some(tokens));
    for method in dto.methods.iter_mut().flatten() {
        method.answer_token = created
            .method_tokens
            .iter()
            .find(|(id, _)| id.to_string() == method.id)
            .and_then(|(_, tokens)| tokens.first())
            .map(|t| t.expose().to_string());
    }
    let base = state.engine.page_origin(&created.view);
    for (actor, token) in dto.actors.iter_mut().zip(tokens) {
        actor.answer_url = Some(format!("{base}/c/{}?t={}", dto.id, token.expose()));
    }
    Ok((false, dto))
}

/// Read a challenge, or long-poll it with `?wait=`.
#[utoipa::path(get, path = "/api/v1/challenges/{id}", tag = "challenges",
    params(("id" = String, Path), GetQuery),
    responses((status = 200, body = ChallengeDto), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = ["challenge:get"])))]
pub async fn get(
    req: HttpRequest,
    path: web::Path<String>,
    state: State,
) -> Result<HttpResponse, ApiError> {
    let principal = authenticate(&req, &state)?;
    let q: GetQuery = query(&req)?;
    let known = q
        .state
        .as_deref()
        .map(|s| state_param("state", s))
        .transpose()?;
    let id = challenge_id(&path)?;
    let view = match q.wait {
        None => state.engine.get(&principal, &id).await?,
        Some(wait) => {
            state
                .engine
                .watch(&principal, &id, known, Duration::from_secs(wait))
                .await?
        }
    };
    Ok(HttpResponse::Ok().json(ChallengeDto::new(&view, None)))
}

/// List the tenant's challenges, in id order, a page at a time.
#[utoipa::path(get, path = "/api/v1/challenges", tag = "challenges",
    params(ListQuery),
    responses((status = 200, body = ChallengeList), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = ["challenge:get"])))]
pub async fn list(req: HttpRequest, state: State) -> Result<HttpResponse, ApiError> {
    let principal = authenticate(&req, &state)?;
    let q: ListQuery = query(&req)?;
    let (page_size, after) = crate::api::page(
        q.page_size,
        DEFAULT_PAGE_SIZE,
        MAX_PAGE_SIZE,
        q.page_token.as_deref(),
        ChallengeId::parse,
    )?;
    let filter = ListFilter {
        user_id: q.user_id,
        state: q
            .state
            .as_deref()
            .map(|s| state_param("state", s))
            .transpose()?,
        kind: q
            .kind
            .as_deref()
            .map(|k| {
                ChallengeType::parse(k).ok_or_else(|| {
                    ApiError::invalid("invalid_query", "type is not a challenge type")
                })
            })
            .transpose()?,
        factor: None,
    };
    let (page, next) = state
        .engine
        .list(&principal, filter, after, page_size)
        .await?;
    Ok(HttpResponse::Ok().json(ChallengeList {
        challenges: page.iter().map(|c| ChallengeDto::new(c, None)).collect(),
        next_page_token: next.map(|id| id.to_string()),
    }))
}

/// Answer a challenge: anonymously with an actor's `answer_token`, or as a bearer
/// caller with `challenge:answer` on a user's behalf.
#[utoipa::path(post, path = "/api/v1/challenges/{id}/answer", tag = "challenges",
    params(("id" = String, Path)), request_body = AnswerRequest,
    responses((status = 200, description = "a bearer caller gets the challenge; an anonymous one only its id, state, answered_at and its own actor id",
            body = AnswerResponse),
        (status = 400, description = "wrong_answer (with attempts_left), answer_rejected (anonymous), invalid_credential, credential_required (webauthn), invalid input", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "already_answered, expired, cancelled, failed", body = ErrorBody),
        (status = 429, body = ErrorBody)),
    security((), ("bearer" = ["challenge:answer"])))]
pub async fn answer(
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
    state: State,
) -> Result<HttpResponse, ApiError> {
    let principal = bearer(&req, &state)?;
    let anonymous = principal.is_none();
    let result = answer_as(&req, &path, payload, &state, principal).await;
    match result {
        Ok(view) if anonymous => Ok(HttpResponse::Ok().json(AnonymousAnswerDto::new(&view))),
        Ok(view) => Ok(HttpResponse::Ok().json(ChallengeDto::new(&view, None))),
        Err(e) if anonymous => Err(e.for_anonymous()),
        Err(e) => Err(e),
    }
}

async fn answer_as(
    req: &HttpRequest,
    path: &str,
    payload: web::Payload,
    state: &State,
    principal: Option<crate::auth::Principal>,
) -> Result<View, ApiError> {
    admit_anonymous(req, state, principal.is_none())?;
    let body = json_body(req, payload, state.settings.server.body_limit_bytes).await?;
    let request: AnswerRequest = parse_json(&body)?;
    answer_with(state, principal, path, request).await
}

/// An anonymous answer counts against its client address's allowance
/// (`limits.anonymous_answers_per_ip_per_minute`) before its body is read: 429
/// `rate_limited` beyond it. Bearer callers are not counted.
pub(crate) fn admit_anonymous(
    req: &HttpRequest,
    state: &State,
    anonymous: bool,
) -> Result<(), ApiError> {
    if anonymous {
        let ip = state.proxies.client(req);
        if !state.anonymous.allow(ip, state.engine.now_ms()) {
            return Err(crate::engine::Error::RateLimited {
                retry_after_seconds: 60,
            }
            .into());
        }
    }
    Ok(())
}

/// The answer `request` to challenge `id` (as given in the path), anonymous without a
/// principal: one engine call. Shared by the faces that speak this API's model.
pub(crate) async fn answer_with(
    state: &State,
    principal: Option<crate::auth::Principal>,
    id: &str,
    request: AnswerRequest,
) -> Result<View, ApiError> {
    let id = challenge_id(id)?;
    let token = request
        .answer_token
        .as_deref()
        // A token of the wrong shape cannot match: treat it as a wrong token.
        .map(|raw| AnswerToken::parse(raw).unwrap_or_else(AnswerToken::random));
    let actor_id = request
        .actor_id
        .as_deref()
        .map(|a| {
            ActorId::parse(a).ok_or_else(|| {
                ApiError::invalid("unknown_actor", "actor_id names no actor of this challenge")
            })
        })
        .transpose()?;
    let method = request.method_id.as_deref().map(method_id).transpose()?;
    let attempt = Attempt {
        token,
        code: request.code,
        actor_id,
        allowed: request.allowed.unwrap_or(true),
        on_behalf: principal.is_some(),
        device: None,
        credential: request.credential,
        method,
    };
    Ok(state
        .engine
        .answer(principal.as_ref(), &id, attempt)
        .await?)
}

/// Cancel an `issued` or `verified` challenge.
#[utoipa::path(delete, path = "/api/v1/challenges/{id}", tag = "challenges",
    params(("id" = String, Path)),
    responses((status = 200, body = ChallengeDto), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, description = "not_cancellable", body = ErrorBody)),
    security(("bearer" = ["challenge:delete"])))]
pub async fn cancel(
    req: HttpRequest,
    path: web::Path<String>,
    state: State,
) -> Result<HttpResponse, ApiError> {
    let principal = authenticate(&req, &state)?;
    let view = state
        .engine
        .cancel(&principal, &challenge_id(&path)?)
        .await?;
    Ok(HttpResponse::Ok().json(ChallengeDto::new(&view, None)))
}

/// Complete a `verified` challenge.
#[utoipa::path(post, path = "/api/v1/challenges/{id}/complete", tag = "challenges",
    params(("id" = String, Path)),
    responses((status = 200, body = ChallengeDto), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, description = "not_completable", body = ErrorBody)),
    security(("bearer" = ["challenge:complete"])))]
pub async fn complete(
    req: HttpRequest,
    path: web::Path<String>,
    state: State,
) -> Result<HttpResponse, ApiError> {
    let principal = authenticate(&req, &state)?;
    let view = state
        .engine
        .complete(&principal, &challenge_id(&path)?)
        .await?;
    Ok(HttpResponse::Ok().json(ChallengeDto::new(&view, None)))
}

/// Re-deliver a challenge. `token` challenges are not delivered: 409 `not_deliverable`.
#[utoipa::path(post, path = "/api/v1/challenges/{id}/resend", tag = "challenges",
    params(("id" = String, Path)),
    responses((status = 202, description = "sent again", body = ChallengeDto),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "not_deliverable, resend_limit, or the challenge has ended", body = ErrorBody),
        (status = 429, description = "resend_cooldown (with Retry-After), recipient_limit", body = ErrorBody)),
    security(("bearer" = ["challenge:resend"])))]
pub async fn resend(
    req: HttpRequest,
    path: web::Path<String>,
    state: State,
) -> Result<HttpResponse, ApiError> {
    let principal = authenticate(&req, &state)?;
    let view = state
        .engine
        .resend(&principal, &challenge_id(&path)?)
        .await?;
    Ok(HttpResponse::Accepted().json(ChallengeDto::new(&view, None)))
}

/// Start a method of a challenge that offers several: its code is issued and sent.
/// Starting it again sends it again, under the resend rules.
#[utoipa::path(post, path = "/api/v1/challenges/{id}/methods/{method_id}/start", tag = "challenges",
    params(("id" = String, Path), ("method_id" = String, Path)),
    responses((status = 202, description = "its code is being sent", body = ChallengeDto),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, description = "challenge_not_found, method_not_found", body = ErrorBody),
        (status = 409, description = "not_deliverable (a method that is not delivered), not_startable (the challenge is no longer issued), method_failed, resend_limit", body = ErrorBody),
        (status = 429, description = "resend_cooldown (with Retry-After), recipient_limit", body = ErrorBody)),
    security(("bearer" = ["challenge:resend"])))]
pub async fn start_method(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    state: State,
) -> Result<HttpResponse, ApiError> {
    let principal = authenticate(&req, &state)?;
    let (id, method) = path.into_inner();
    let id = challenge_id(&id)?;
    let method = method_id(&method)?;
    let view = state.engine.start_method(&principal, &id, method).await?;
    Ok(HttpResponse::Accepted().json(ChallengeDto::new(&view, None)))
}

/// The secret this tenant's webhooks are signed with.
#[utoipa::path(get, path = "/api/v1/webhooks/secret", tag = "webhooks",
    responses((status = 200, body = WebhookSecret), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = ["challenge:webhook:get"])))]
pub async fn webhook_secret(req: HttpRequest, state: State) -> Result<HttpResponse, ApiError> {
    let principal = authenticate(&req, &state)?;
    let secret = state.engine.webhook_secret(&principal)?;
    Ok(HttpResponse::Ok()
        .insert_header(("Cache-Control", "no-store"))
        .json(WebhookSecret {
            secret,
            header: crate::delivery::SIGNATURE_HEADER.to_string(),
        }))
}
