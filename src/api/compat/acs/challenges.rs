//! `/compat/acs/v1/challenges`: the ACS Core API. Each handler authenticates as the
//! native API does, translates the ACS request into the native one, makes the engine
//! call the native handler makes (through the native handler's own steps where they
//! are more than one call), and renders the native result in ACS names.

use std::time::Duration;

use actix_web::{web, HttpRequest, HttpResponse};

use super::dto::*;
use super::errors::AcsError;
use crate::api::native::challenges::{
    admit_anonymous, answer_with, challenge_id, create_challenge,
};
use crate::api::native::dto::{AnonymousAnswerDto, ChallengeDto, DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE};
use crate::api::{authenticate, bearer, json_body, parse_json, query, ApiError, State};
use crate::model::{Challenge, ChallengeId};
use crate::store::ListFilter;

fn render(challenge: &Challenge) -> AcsChallenge {
    AcsChallenge::from(ChallengeDto::new(challenge, None))
}

fn status_param(raw: &str) -> Result<crate::model::State, ApiError> {
    parse_status(raw).ok_or_else(|| {
        ApiError::invalid(
            "invalid_query",
            "status must be one of ISSUED, VERIFIED, COMPLETED, CANCELLED, EXPIRED, FAILED, DECLINED",
        )
    })
}

/// Create a challenge from a named policy (`policyAlias`) or an explicit ACS `type`:
/// 201 (200 an idempotent replay, as natively).
pub async fn create(
    req: HttpRequest,
    payload: web::Payload,
    state: State,
) -> Result<HttpResponse, AcsError> {
    let principal = authenticate(&req, &state)?;
    let body = json_body(&req, payload, state.settings.server.body_limit_bytes).await?;
    let request: AcsCreateChallenge = parse_json(&body).map_err(AcsError::as_given)?;
    let native = request.into_native()?;
    let (replayed, dto) =
        create_challenge(&req, &state, &principal, native, Some(ACS_TYPES)).await?;
    let body = AcsChallenge::from(dto);
    if replayed {
        return Ok(HttpResponse::Ok()
            .insert_header(("Idempotent-Replayed", "true"))
            .json(body));
    }
    Ok(HttpResponse::Created().json(body))
}

/// Read a challenge's status and metadata, or long-poll it (`?wait=&status=`).
pub async fn get(
    req: HttpRequest,
    path: web::Path<String>,
    state: State,
) -> Result<HttpResponse, AcsError> {
    let principal = authenticate(&req, &state)?;
    let q: AcsGetQuery = query(&req).map_err(AcsError::as_given)?;
    let known = q.status.as_deref().map(status_param).transpose()?;
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
    Ok(HttpResponse::Ok().json(render(&view)))
}

/// List the tenant's challenges (`userId`, `status`, `type`, `pageSize`, `pageToken`).
pub async fn list(req: HttpRequest, state: State) -> Result<HttpResponse, AcsError> {
    let principal = authenticate(&req, &state)?;
    let q: AcsListQuery = query(&req).map_err(AcsError::as_given)?;
    let (page_size, after) = crate::api::page(
        q.page_size,
        DEFAULT_PAGE_SIZE,
        MAX_PAGE_SIZE,
        q.page_token.as_deref(),
        ChallengeId::parse,
    )?;
    let kind = q
        .kind
        .as_deref()
        .map(|raw| {
            crate::model::ChallengeType::ALL
                .into_iter()
                .find(|k| type_name(*k) == raw)
                .ok_or_else(|| {
                    ApiError::invalid(
                        "invalid_query",
                        "type must be a type name: EMAIL_OTP, SMS_OTP, EMAIL_LINK, TOKEN \
                         (or TOTP, PUSH, WEBAUTHN, ONE_TIME_USE_ACTION)",
                    )
                })
        })
        .transpose()?;
    let filter = ListFilter {
        user_id: q.user_id,
        state: q.status.as_deref().map(status_param).transpose()?,
        kind,
        factor: None,
    };
    let (page, next) = state
        .engine
        .list(&principal, filter, after, page_size)
        .await?;
    Ok(HttpResponse::Ok().json(AcsChallengeList {
        challenges: page.iter().map(render).collect(),
        next_page_token: next.map(|id| id.to_string()),
    }))
}

/// Answer with an OTP `code` or a token value (`answerToken`): as a bearer caller with
/// `challenge:answer`, or anonymously with the actor's `answerToken`, as natively.
pub async fn answer(
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
    state: State,
) -> Result<HttpResponse, AcsError> {
    let principal = bearer(&req, &state)?;
    let anonymous = principal.is_none();
    // Each error with whether it is about the ACS body (see `AcsError::as_given`).
    let result = async {
        admit_anonymous(&req, &state, anonymous).map_err(|e| (e, false))?;
        let body = json_body(&req, payload, state.settings.server.body_limit_bytes)
            .await
            .map_err(|e| (e, false))?;
        let request: AcsAnswer = parse_json(&body).map_err(|e| (e, true))?;
        answer_with(&state, principal, &path, request.into_native())
            .await
            .map_err(|e| (e, false))
    }
    .await;
    match result {
        Ok(view) if anonymous => {
            Ok(HttpResponse::Ok().json(AcsAnonymousAnswer::from(AnonymousAnswerDto::new(&view))))
        }
        Ok(view) => Ok(HttpResponse::Ok().json(render(&view))),
        Err((e, true)) if anonymous => Err(AcsError::as_given(e.for_anonymous())),
        Err((e, false)) if anonymous => Err(e.for_anonymous().into()),
        Err((e, true)) => Err(AcsError::as_given(e)),
        Err((e, false)) => Err(e.into()),
    }
}

/// Cancel an `ISSUED` or `VERIFIED` challenge.
pub async fn cancel(
    req: HttpRequest,
    path: web::Path<String>,
    state: State,
) -> Result<HttpResponse, AcsError> {
    let principal = authenticate(&req, &state)?;
    let view = state
        .engine
        .cancel(&principal, &challenge_id(&path)?)
        .await?;
    Ok(HttpResponse::Ok().json(render(&view)))
}

/// Complete a `VERIFIED` challenge: the consuming service finalizes the action.
pub async fn complete(
    req: HttpRequest,
    path: web::Path<String>,
    state: State,
) -> Result<HttpResponse, AcsError> {
    let principal = authenticate(&req, &state)?;
    let view = state
        .engine
        .complete(&principal, &challenge_id(&path)?)
        .await?;
    Ok(HttpResponse::Ok().json(render(&view)))
}

/// Re-deliver the code or link to the original recipient: 202.
pub async fn resend(
    req: HttpRequest,
    path: web::Path<String>,
    state: State,
) -> Result<HttpResponse, AcsError> {
    let principal = authenticate(&req, &state)?;
    let view = state
        .engine
        .resend(&principal, &challenge_id(&path)?)
        .await?;
    Ok(HttpResponse::Accepted().json(render(&view)))
}
