//! `/api/v1/configuration`: the calling tenant's runtime configuration
//! (spec/onewelcome-acs.md, "Global Configuration API"). A read shows the configuration
//! in effect; a replace is checked against the file's caps, swapped in the store at the
//! expected version, made durable, and then put into effect for the next request.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::dto::{check_range, rfc3339};
use crate::api::error::ErrorBody;
use crate::api::{etag, if_match, json_body, json_error, parse_json, require, ApiError, State};
use crate::auth::Scope;
use crate::config::Limits;
use crate::model::configuration::{CODE_LENGTH, MAX_ANONYMOUS_FAILURES, MAX_RETENTION_SECONDS};
use crate::model::{Properties, TenantConfig};
use crate::store::WriteError;

/// A tenant's configuration as the API shows it. A PUT body has the same shape and must
/// carry every property; `version` and `updated_at` are set by the server and ignored
/// in requests.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConfigurationDto {
    #[serde(flatten)]
    pub properties: Properties,
    /// 0 until the first PUT.
    pub version: u64,
    /// When it was last PUT; null at version 0.
    pub updated_at: Option<String>,
}

fn respond(config: &TenantConfig) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header(etag(config.version))
        .json(ConfigurationDto {
            properties: config.properties.clone(),
            version: config.version,
            updated_at: config.updated_at.map(rfc3339),
        })
}

/// The properties of a PUT body, the server-set fields dropped.
fn parse_body(body: &[u8]) -> Result<Properties, ApiError> {
    let mut object: serde_json::Map<String, Value> = parse_json(body)?;
    object.remove("version");
    object.remove("updated_at");
    serde_json::from_value(Value::Object(object)).map_err(json_error)
}

/// Every property within its bounds: the file's caps, and each default within its
/// maximum. The message names the property.
fn check(p: &Properties, limits: &Limits) -> Result<(), ApiError> {
    check_range(
        "max_ttl_seconds",
        Some(p.max_ttl_seconds),
        1..=limits.max_ttl_seconds,
    )?;
    check_range(
        "default_ttl_seconds",
        Some(p.default_ttl_seconds),
        1..=p.max_ttl_seconds,
    )?;
    check_range(
        "max_attempts",
        Some(p.max_attempts),
        1..=limits.max_attempts,
    )?;
    check_range(
        "default_max_attempts",
        Some(p.default_max_attempts),
        1..=p.max_attempts,
    )?;
    check_range(
        "default_code_length",
        Some(p.default_code_length),
        CODE_LENGTH,
    )?;
    check_range(
        "retention_seconds",
        Some(p.retention_seconds),
        0..=MAX_RETENTION_SECONDS,
    )?;
    check_range(
        "max_live_challenges",
        Some(p.max_live_challenges),
        1..=limits.max_live_challenges,
    )?;
    check_range(
        "long_poll_max_seconds",
        Some(p.long_poll_max_seconds),
        0..=limits.long_poll_max_seconds,
    )?;
    check_range(
        "anonymous_failures_per_challenge_per_minute",
        Some(p.anonymous_failures_per_challenge_per_minute),
        0..=MAX_ANONYMOUS_FAILURES,
    )
}

/// Read the tenant's configuration in effect; its `ETag` is its version.
#[utoipa::path(get, path = "/api/v1/configuration", tag = "configuration",
    responses((status = 200, description = "with ETag", body = ConfigurationDto),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = ["challenge:configuration:get"])))]
pub async fn get(req: HttpRequest, state: State) -> Result<HttpResponse, ApiError> {
    let principal = require(&req, &state, Scope::ConfigurationGet)?;
    let tenant = state.registry.tenant(&principal.tenant);
    Ok(respond(&tenant.config()))
}

/// Replace the tenant's configuration as a whole; it applies from the next request on.
/// `If-Match` must carry the version read (its ETag; `"0"` before the first PUT).
#[utoipa::path(put, path = "/api/v1/configuration", tag = "configuration",
    params(("If-Match" = String, Header, description = "the ETag of the version replaced, e.g. \"0\"")),
    request_body(content = ConfigurationDto, description = "every property; version and updated_at are ignored"),
    responses((status = 200, description = "replaced and in effect; the new ETag", body = ConfigurationDto),
        (status = 400, description = "out_of_range (naming the property), invalid_field, unknown_field", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 412, description = "version_conflict, with current_version", body = ErrorBody),
        (status = 428, description = "precondition_required: no If-Match", body = ErrorBody)),
    security(("bearer" = ["challenge:configuration:put"])))]
pub async fn replace(
    req: HttpRequest,
    payload: web::Payload,
    state: State,
) -> Result<HttpResponse, ApiError> {
    let principal = require(&req, &state, Scope::ConfigurationPut)?;
    let expected = if_match(&req)?.ok_or(ApiError::PreconditionRequired)?;
    let body = json_body(&req, payload, state.settings.server.body_limit_bytes).await?;
    let properties = parse_body(&body)?;
    check(&properties, &state.settings.limits)?;
    let tenant = state.registry.tenant(&principal.tenant);
    let services = state.registry.services();
    let config = services
        .store
        .configuration()
        .replace(&tenant.id, expected, properties, services.clock.now_ms())
        .map_err(|e| match e {
            WriteError::Stale { current } => ApiError::VersionConflict {
                current_version: current,
            },
            WriteError::Store(e) => e.into(),
            WriteError::Exists | WriteError::NotFound => ApiError::Internal,
        })?;
    services.store.durable().await?;
    tenant.set_config(config.clone());
    Ok(respond(&config))
}
