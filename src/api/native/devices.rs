//! `/api/v1/devices`: the push device's own routes. The device authenticates with a
//! JWT it signs with its enrolled key (`Authorization: Bearer`, see
//! `factors::push::check_token`), not with a service token; each handler authenticates
//! the device through the engine, parses, makes one engine call and renders. The
//! device's shapes live here.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use utoipa::{IntoParams, ToSchema};

use super::dto::{rfc3339, DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE};
use crate::api::error::ErrorBody;
use crate::api::{json_body, parse_json, query, ApiError, State};
use crate::challenge::kinds::push::{signing_payload, Decision};
use crate::engine::devices::Device;
use crate::model::{Challenge, ChallengeId, State as ChallengeState};

/// A push challenge as its device is shown it.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeviceChallenge {
    pub id: String,
    pub factor_id: String,
    pub state: ChallengeState,
    pub created_at: String,
    pub expires_at: String,
    #[schema(value_type = Object)]
    pub details: Option<Box<RawValue>>,
    /// What the device signs, with `.` and its decision appended (README, "Push").
    pub signing_payload: String,
}

impl DeviceChallenge {
    fn new(c: &Challenge) -> Self {
        DeviceChallenge {
            id: c.id.to_string(),
            factor_id: c.factor().map(|f| f.to_string()).unwrap_or_default(),
            state: c.life.state,
            created_at: rfc3339(c.created_at),
            expires_at: rfc3339(c.life.expires_at),
            details: c
                .details()
                .and_then(|d| RawValue::from_string(d.to_string()).ok()),
            signing_payload: signing_payload(c).unwrap_or_default(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeviceChallengeList {
    pub challenges: Vec<DeviceChallenge>,
    pub next_page_token: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct DeviceListQuery {
    /// A challenge state, e.g. `issued` (the open ones); default: every state.
    pub state: Option<String>,
    /// 1..=1000, default 50.
    pub page_size: Option<usize>,
    /// `next_page_token` of the previous page.
    pub page_token: Option<String>,
}

/// `POST /api/v1/devices/challenges/{id}/answer`
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeviceAnswer {
    /// `approved` or `denied`.
    pub decision: String,
    /// base64url of the DER ECDSA-P256-SHA256 signature of the UTF-8 text
    /// `signing_payload + "." + decision`.
    pub signature: String,
}

/// The device whose key signed the bearer token, or 401.
async fn device(req: &HttpRequest, state: &State) -> Result<Device, ApiError> {
    let token = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .ok_or(ApiError::Unauthorized)?;
    Ok(state.engine.device(token).await?)
}

/// List the push challenges sent to the calling device.
#[utoipa::path(get, path = "/api/v1/devices/challenges", tag = "devices",
    params(DeviceListQuery),
    responses((status = 200, body = DeviceChallengeList), (status = 400, description = "invalid_query", body = ErrorBody),
        (status = 401, description = "unauthorized, invalid_device_token, device_token_expired, device_token_lifetime_too_long, device_not_verified", body = ErrorBody)),
    security(("device_jwt" = [])))]
pub async fn list(req: HttpRequest, state: State) -> Result<HttpResponse, ApiError> {
    let device = device(&req, &state).await?;
    let q: DeviceListQuery = query(&req)?;
    let wanted = q
        .state
        .as_deref()
        .map(|s| {
            ChallengeState::parse(s)
                .ok_or_else(|| ApiError::invalid("invalid_query", "state is not a challenge state"))
        })
        .transpose()?;
    let (page_size, after) = crate::api::page(
        q.page_size,
        DEFAULT_PAGE_SIZE,
        MAX_PAGE_SIZE,
        q.page_token.as_deref(),
        ChallengeId::parse,
    )?;
    let (page, next) = state
        .engine
        .device_challenges(&device, wanted, after, page_size)
        .await?;
    Ok(HttpResponse::Ok().json(DeviceChallengeList {
        challenges: page.iter().map(DeviceChallenge::new).collect(),
        next_page_token: next.map(|id| id.to_string()),
    }))
}

/// Approve or deny one of the calling device's push challenges.
#[utoipa::path(post, path = "/api/v1/devices/challenges/{id}/answer", tag = "devices",
    params(("id" = String, Path)), request_body = DeviceAnswer,
    responses((status = 200, description = "verified (approved) or declined (denied)", body = DeviceChallenge),
        (status = 400, description = "invalid_signature, invalid_field", body = ErrorBody),
        (status = 401, description = "unauthorized, invalid_device_token, device_token_expired, device_token_lifetime_too_long, device_not_verified", body = ErrorBody),
        (status = 404, description = "challenge_not_found: no such challenge, or another device's", body = ErrorBody),
        (status = 409, description = "already_answered, expired, cancelled, failed", body = ErrorBody)),
    security(("device_jwt" = [])))]
pub async fn answer(
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
    state: State,
) -> Result<HttpResponse, ApiError> {
    let device = device(&req, &state).await?;
    let body = json_body(&req, payload, state.settings.server.body_limit_bytes).await?;
    let request: DeviceAnswer = parse_json(&body)?;
    let decision = Decision::parse(&request.decision)
        .ok_or_else(|| ApiError::invalid("invalid_field", "decision must be approved or denied"))?;
    let id = ChallengeId::parse(&path).ok_or(crate::engine::Error::ChallengeNotFound)?;
    let view = state
        .engine
        .device_answer(
            &device,
            &id,
            decision,
            crate::challenge::kinds::token::Signed::Native(request.signature),
        )
        .await?;
    Ok(HttpResponse::Ok().json(DeviceChallenge::new(&view)))
}
