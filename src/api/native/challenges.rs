//! `/api/v1/challenges`: each handler authorizes and parses, sends one message to the
//! tenant's supervisor or the challenge's actor, and maps the reply.

use std::time::{Duration, Instant};

use actix_web::{web, HttpRequest, HttpResponse};
use sha2::{Digest, Sha256};

use super::dto::*;
use super::policies;
use crate::api::error::ErrorBody;
use crate::api::{bearer, json_body, parse_json, query, require, ApiError, State};
use crate::auth::Scope;
use crate::challenge::kinds::delivered;
use crate::challenge::kinds::token::{self, Attempt};
use crate::challenge::messages::{Answer, Cancel, Complete, Resend, View, Watch, Watching};
use crate::metrics as m;
use crate::model::{
    ActorDelivery, ActorId, AnswerToken, Challenge, ChallengeId, ChallengeType, DeliveryChannel,
    DeliveryPlan, DeliveryStatus, Extras, Idempotency, Lifecycle, Policy, PolicyRef, Properties,
    State as ChallengeState,
};
use crate::store::ListFilter;
use crate::tenant::supervisor::Spawned;

fn challenge_id(raw: &str) -> Result<ChallengeId, ApiError> {
    ChallengeId::parse(raw).ok_or(ApiError::ChallengeNotFound)
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
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 409, description = "idempotency_conflict", body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 429, description = "quota_exceeded", body = ErrorBody)),
    security(("bearer" = ["challenge:post"])))]
pub async fn create(
    req: HttpRequest,
    payload: web::Payload,
    state: State,
) -> Result<HttpResponse, ApiError> {
    let principal = require(&req, &state, Scope::Post)?;
    let body = json_body(&req, payload, state.settings.server.body_limit_bytes).await?;
    let request: CreateChallenge = parse_json(&body)?;
    let header_key = req
        .headers()
        .get("idempotency-key")
        .map(|v| v.to_str().map(str::to_string))
        .transpose()
        .map_err(|_| {
            ApiError::invalid("invalid_header", "Idempotency-Key must be visible ASCII")
        })?;
    let policy = request
        .policy
        .as_deref()
        .map(|alias| policies::find(&state, &principal.tenant, alias))
        .transpose()?;
    let config = state.registry.tenant(&principal.tenant).config();
    let (challenge, tokens, prepared) = build(
        request,
        header_key,
        &principal.tenant,
        policy.as_ref(),
        &config.properties,
        &state,
    )?;
    let one_active = policy.is_some_and(|p| p.spec.one_active_per_user);
    match state
        .registry
        .create(challenge, one_active, prepared)
        .await?
    {
        Spawned::New(view) => {
            let mut dto = ChallengeDto::new(&view, Some(&tokens));
            let base = state.settings.server.public_base_url.trim_end_matches('/');
            for (actor, token) in dto.actors.iter_mut().zip(&tokens) {
                actor.answer_url = Some(format!("{base}/c/{}?t={}", dto.id, token.expose()));
            }
            Ok(HttpResponse::Created().json(dto))
        }
        Spawned::Existing(id) => {
            let view: View = state.registry.view(Some(&principal.tenant), &id).await?;
            Ok(HttpResponse::Ok()
                .insert_header(("Idempotent-Replayed", "true"))
                .json(ChallengeDto::new(&view, None)))
        }
    }
}

/// A validated create: the record, the answer tokens to show once (not for delivery
/// kinds), and the secrets and first messages only the recipients get (delivery kinds).
type Built = (Challenge, Vec<AnswerToken>, Option<delivered::Prepared>);

/// Validates a create request into a challenge record and its plain answer tokens, with
/// defaults and bounds from the tenant's configuration narrowed by the policy, if any.
fn build(
    mut request: CreateChallenge,
    header_key: Option<String>,
    tenant: &crate::model::TenantId,
    policy: Option<&Policy>,
    config: &Properties,
    state: &State,
) -> Result<Built, ApiError> {
    let limits = &state.settings.limits;
    let idempotency_key = match (header_key, request.idempotency_key.take()) {
        (Some(h), Some(b)) if h != b => {
            return Err(ApiError::invalid(
                "invalid_field",
                "idempotency_key differs from the Idempotency-Key header",
            ))
        }
        (h, b) => h.or(b),
    };
    if let Some(key) = &idempotency_key {
        check_text("idempotency_key", key, MAX_IDEMPOTENCY_KEY)?;
    }
    let kind = match (request.kind, policy) {
        (Some(kind), Some(p)) if kind != p.spec.kind => {
            return Err(ApiError::invalid(
                "policy_type_mismatch",
                format!(
                    "type is {} but policy {} is for {} challenges",
                    kind.as_str(),
                    p.alias,
                    p.spec.kind.as_str()
                ),
            ))
        }
        (Some(kind), _) => kind,
        (None, Some(p)) => p.spec.kind,
        (None, None) => {
            return Err(ApiError::invalid(
                "invalid_field",
                "type is required unless policy names a policy",
            ))
        }
    };
    if !kind.is_enabled() {
        return Err(ApiError::TypeNotEnabled(kind));
    }
    let channel = kind.delivered_by();
    let per_actor_recipients = request
        .actors
        .iter()
        .flatten()
        .any(|a| a.recipient.is_some());
    if channel.is_none()
        && (request.recipient.is_some()
            || per_actor_recipients
            || request.send.is_some()
            || request.locale.is_some())
    {
        return Err(ApiError::invalid(
            "invalid_field",
            format!(
                "recipient, send and locale are not used by {} challenges",
                kind.as_str()
            ),
        ));
    }
    let conditions = policy.and_then(|p| p.spec.conditions.as_ref());
    let recipients: Option<Vec<String>> = match channel {
        None => None,
        Some(channel) => Some(match &request.actors {
            Some(actors) if per_actor_recipients || actors.len() > 1 => actors
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
        }),
    };
    if let Some(locale) = &request.locale {
        let ok = locale.len() <= 35
            && locale.split('-').all(|p| {
                !p.is_empty() && p.len() <= 8 && p.bytes().all(|b| b.is_ascii_alphanumeric())
            });
        if !ok {
            return Err(ApiError::invalid(
                "invalid_field",
                "locale is not a language tag such as en or nl-BE",
            ));
        }
    }
    check_text("user_id", &request.user_id, MAX_USER_ID)?;
    let actor_ids: Vec<String> = match &request.actors {
        None => vec![request.user_id.clone()],
        Some(actors) => {
            if actors.is_empty() {
                return Err(ApiError::invalid(
                    "invalid_field",
                    "actors must not be empty",
                ));
            }
            if actors.len() > limits.max_actors {
                return Err(ApiError::invalid(
                    "too_many_items",
                    format!("actors holds more than {} entries", limits.max_actors),
                ));
            }
            for (i, a) in actors.iter().enumerate() {
                check_text(&format!("actors[{i}].user_id"), &a.user_id, MAX_USER_ID)?;
            }
            actors.iter().map(|a| a.user_id.clone()).collect()
        }
    };
    let bounds = policies::Bounds::new(config, policy.map(|p| &p.spec));
    let ttl = request.ttl_seconds.unwrap_or(bounds.default_ttl_seconds);
    if ttl == 0 || ttl > bounds.max_ttl_seconds {
        return Err(ApiError::invalid(
            "ttl_out_of_range",
            format!(
                "ttl_seconds must be between 1 and {}",
                bounds.max_ttl_seconds
            ),
        ));
    }
    let max_attempts = request.max_attempts.unwrap_or(bounds.default_max_attempts);
    if max_attempts == 0 || max_attempts > bounds.max_attempts {
        return Err(ApiError::invalid(
            "max_attempts_out_of_range",
            format!("max_attempts must be between 1 and {}", bounds.max_attempts),
        ));
    }
    if let Some(details) = &request.details {
        check_details(details)?;
    }
    let hidden_details = request
        .hidden_details
        .as_ref()
        .map(|h| serde_json::to_string(h).expect("a JSON map encodes"));
    if hidden_details
        .as_ref()
        .is_some_and(|h| h.len() > MAX_HIDDEN_DETAILS)
    {
        return Err(ApiError::invalid(
            "field_too_long",
            format!("hidden_details is larger than {MAX_HIDDEN_DETAILS} bytes"),
        ));
    }
    let services = state.registry.services();
    let outbound = services.actions.policy();
    if request.callback_url.is_none() {
        request.callback_url = policy.and_then(|p| p.spec.callback_url.clone());
    }
    if let Some(url) = &request.callback_url {
        check_url("callback_url", url)?;
        check_outbound("callback_url", url, outbound)?;
    }
    let actions = match (kind, &request.actions) {
        (ChallengeType::OneTimeUseAction, Some(spec)) => {
            Some(parse_actions(spec, &state.settings.actions, outbound)?)
        }
        (ChallengeType::OneTimeUseAction, None) => {
            return Err(ApiError::invalid(
                "invalid_field",
                "actions is required for one_time_use_action",
            ))
        }
        (_, Some(_)) => {
            return Err(ApiError::invalid(
                "invalid_field",
                "actions is only for one_time_use_action challenges",
            ))
        }
        (_, None) => None,
    };
    let idempotency = idempotency_key.map(|key| Idempotency {
        key: key.into(),
        request_hash: Sha256::digest(serde_json::to_vec(&request).expect("a request encodes"))
            .into(),
    });
    let (actors, mut tokens) = token::issue(&services.key, &actor_ids);
    let now = services.clock.now_ms();
    let send = request.send.unwrap_or(true);
    let delivery = match (channel, &recipients) {
        (Some(channel), Some(recipients)) => {
            let spec = policy.map(|p| &p.spec);
            let defaults = &state.settings.delivery;
            Some(DeliveryPlan {
                channel,
                locale: request.locale.as_deref().map(Into::into),
                code_length: spec
                    .and_then(|p| p.code_length)
                    .unwrap_or(config.default_code_length)
                    .clamp(4, 10) as u8,
                code_alphabet: spec
                    .and_then(|p| p.code_alphabet)
                    .unwrap_or(defaults.code_alphabet),
                resend_cooldown_seconds: spec
                    .and_then(|p| p.resend_cooldown_seconds)
                    .map_or(defaults.resend_cooldown_seconds, |s| s as u32),
                max_resends: spec
                    .and_then(|p| p.max_resends)
                    .unwrap_or(defaults.max_resends),
                resend_mode: spec
                    .and_then(|p| p.resend_mode)
                    .unwrap_or(defaults.resend_mode),
                templates: spec
                    .and_then(|p| p.templates.as_ref())
                    .map(|t| serde_json::to_string(t).expect("templates encode").into()),
                resends: 0,
                last_sent_at: send.then_some(now),
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
            })
        }
        _ => None,
    };
    let mut challenge = Challenge {
        id: ChallengeId::random(),
        tenant: tenant.clone(),
        kind,
        user_id: request.user_id.into(),
        actors,
        created_at: now,
        life: Lifecycle::issued(now, now + (ttl as i64) * 1000, max_attempts),
        retention_ms: (bounds.retention_seconds as i64) * 1000,
        extras: Extras {
            details: request
                .details
                .as_ref()
                .map(|d| serde_json::to_string(d).expect("details encode").into()),
            hidden_details: hidden_details.map(Into::into),
            callback_url: request.callback_url.map(Into::into),
            idempotency,
            actions,
            delivery,
            policy: policy.map(|p| PolicyRef {
                alias: p.alias.clone(),
                version: p.version,
            }),
        }
        .boxed(),
    };
    let prepared = match challenge.delivery().cloned() {
        None => None,
        Some(plan) => {
            // The code or link goes to the recipient only: the caller never sees it.
            tokens.clear();
            let transport_ready = match plan.channel {
                DeliveryChannel::Email => services.deliverer.email().is_some(),
                DeliveryChannel::Sms => services.deliverer.sms().is_some(),
            };
            if !transport_ready {
                return Err(ApiError::invalid(
                    "channel_not_configured",
                    format!(
                        "{} delivery is not configured on this server",
                        kind.as_str()
                    ),
                ));
            }
            let mut secrets = Vec::with_capacity(challenge.actors.len());
            for i in 0..challenge.actors.len() {
                let (secret, hash) = delivered::issue_secret(&services.key, &challenge, &plan);
                challenge.actors[i].token_hash = hash;
                secrets.push(secret);
            }
            // Rendered now, so a template that cannot render refuses the create; the
            // actor sends these first messages as they are.
            let messages = secrets
                .iter()
                .enumerate()
                .map(|(i, secret)| {
                    delivered::render(
                        services.deliverer.templates(),
                        &challenge,
                        &plan,
                        i,
                        secret,
                        &services.base_url,
                        now,
                    )
                    .map_err(|e| ApiError::invalid("template_error", e.to_string()))
                })
                .collect::<Result<Vec<_>, _>>()?;
            if send
                && !plan
                    .actors
                    .iter()
                    .all(|a| services.recipients.take(&a.recipient, now))
            {
                return Err(ApiError::Throttled {
                    code: "recipient_limit",
                    message: "the recipient has been sent the most messages allowed today".into(),
                    retry_after_seconds: 3600,
                });
            }
            Some(delivered::Prepared {
                secrets: secrets.into_boxed_slice(),
                messages,
            })
        }
    };
    Ok((challenge, tokens, prepared))
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
    let principal = require(&req, &state, Scope::Get)?;
    let q: GetQuery = query(&req)?;
    let known = q
        .state
        .as_deref()
        .map(|s| state_param("state", s))
        .transpose()?;
    let id = challenge_id(&path)?;
    let tenant = Some(&principal.tenant);
    let view = match q.wait {
        None | Some(0) => state.registry.view(tenant, &id).await?,
        Some(wait) => {
            let max = state
                .registry
                .tenant(&principal.tenant)
                .config()
                .properties
                .long_poll_max_seconds;
            if wait > max {
                return Err(ApiError::invalid(
                    "invalid_query",
                    format!("wait must be at most {max} seconds"),
                ));
            }
            match state
                .registry
                .send(tenant, &id, Watch { unless: known })
                .await?
            {
                Watching::Now(view) => view,
                Watching::Later(changed) => {
                    metrics::gauge!(m::LONG_POLLS).increment(1.0);
                    let woken = tokio::time::timeout(Duration::from_secs(wait), changed).await;
                    metrics::gauge!(m::LONG_POLLS).decrement(1.0);
                    match woken {
                        Ok(Ok(view)) => view,
                        _ => state.registry.view(tenant, &id).await?,
                    }
                }
            }
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
    let principal = require(&req, &state, Scope::Get)?;
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
    };
    let (page, next) = state
        .registry
        .list(principal.tenant, after, filter, page_size)
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
    responses((status = 200, body = ChallengeDto),
        (status = 400, description = "wrong_answer (with attempts_left), answer_rejected (anonymous), invalid input", body = ErrorBody),
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
    let started = Instant::now();
    let principal = bearer(&req, &state)?;
    if let Some(p) = &principal {
        if !p.has(Scope::Answer) {
            return Err(ApiError::Forbidden(Scope::Answer));
        }
    }
    let anonymous = principal.is_none();
    let result = answer_as(&req, &path, payload, &state, principal).await;
    let outcome = match &result {
        Ok(view) if view.life.state == ChallengeState::Declined => "declined",
        Ok(_) => "verified",
        Err(ApiError::WrongAnswer { .. }) => "wrong_answer",
        Err(_) => "rejected",
    };
    // A refused answer may name no challenge at all: its type is not reported.
    let kind = result.as_ref().map_or("unknown", |view| view.kind.as_str());
    metrics::counter!(m::ANSWERED, "type" => kind, "outcome" => outcome).increment(1);
    metrics::histogram!(m::ANSWER_SECONDS, "outcome" => outcome)
        .record(started.elapsed().as_secs_f64());
    match result {
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
    let anonymous = principal.is_none();
    if anonymous {
        let now = state.registry.services().clock.now_ms();
        let ip = req.peer_addr().map(|a| a.ip());
        if !state.anonymous.allow(ip, now) {
            return Err(ApiError::RateLimited {
                retry_after_seconds: 60,
            });
        }
    }
    let body = json_body(req, payload, state.settings.server.body_limit_bytes).await?;
    let request: AnswerRequest = parse_json(&body)?;
    let id = challenge_id(path)?;
    if let Some(code) = &request.code {
        check_text("code", code, MAX_CODE)?;
    }
    let token = match request.answer_token.as_deref() {
        None if anonymous => {
            return Err(ApiError::invalid(
                "invalid_field",
                "answer_token is required without a bearer token",
            ))
        }
        None => None,
        // A token of the wrong shape cannot match: treat it as a wrong token.
        Some(raw) => Some(AnswerToken::parse(raw).unwrap_or_else(AnswerToken::random)),
    };
    let actor_id = request
        .actor_id
        .as_deref()
        .map(|a| {
            ActorId::parse(a).ok_or_else(|| {
                ApiError::invalid("unknown_actor", "actor_id names no actor of this challenge")
            })
        })
        .transpose()?;
    let attempt = Attempt {
        token,
        code: request.code,
        actor_id,
        allowed: request.allowed.unwrap_or(true),
        on_behalf: !anonymous,
    };
    let tenant = principal.as_ref().map(|p| &p.tenant);
    state
        .registry
        .send(tenant, &id, Answer(attempt))
        .await?
        .map_err(ApiError::from_challenge)
}

/// A command to one of the caller's challenges: authorize, send, map the refusal.
async fn command<M>(
    req: &HttpRequest,
    path: &str,
    state: &State,
    scope: Scope,
    msg: M,
) -> Result<View, ApiError>
where
    M: actix::Message<Result = Result<View, crate::challenge::messages::ChallengeError>>
        + crate::challenge::messages::Settled
        + Clone
        + Send
        + 'static,
    crate::challenge::ChallengeActor: actix::Handler<M>,
{
    let principal = require(req, state, scope)?;
    let id = challenge_id(path)?;
    state
        .registry
        .send(Some(&principal.tenant), &id, msg)
        .await?
        .map_err(ApiError::from_challenge)
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
    let view = command(&req, &path, &state, Scope::Delete, Cancel).await?;
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
    let view = command(&req, &path, &state, Scope::Complete, Complete).await?;
    Ok(HttpResponse::Ok().json(ChallengeDto::new(&view, None)))
}

/// Re-deliver a challenge. `token` challenges are not delivered: 409 `not_deliverable`.
#[utoipa::path(post, path = "/api/v1/challenges/{id}/resend", tag = "challenges",
    params(("id" = String, Path)),
    responses((status = 202), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, description = "not_deliverable", body = ErrorBody)),
    security(("bearer" = ["challenge:resend"])))]
pub async fn resend(
    req: HttpRequest,
    path: web::Path<String>,
    state: State,
) -> Result<HttpResponse, ApiError> {
    let view = command(&req, &path, &state, Scope::Resend, Resend).await?;
    Ok(HttpResponse::Accepted().json(ChallengeDto::new(&view, None)))
}

/// The secret this tenant's webhooks are signed with.
#[utoipa::path(get, path = "/api/v1/webhooks/secret", tag = "webhooks",
    responses((status = 200, body = WebhookSecret), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = ["challenge:configuration:get"])))]
pub async fn webhook_secret(req: HttpRequest, state: State) -> Result<HttpResponse, ApiError> {
    let principal = require(&req, &state, Scope::ConfigurationGet)?;
    let secret =
        crate::challenge::actor::webhook_secret(&state.registry.services().key, &principal.tenant);
    Ok(HttpResponse::Ok()
        .insert_header(("Cache-Control", "no-store"))
        .json(WebhookSecret {
            secret,
            header: crate::delivery::SIGNATURE_HEADER.to_string(),
        }))
}
