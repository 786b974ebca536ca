//! `/api/v1/configuration`: the calling tenant's runtime configuration
//! (spec/onewelcome-acs.md, "Global Configuration API"), read and replaced through the
//! engine (`engine::configuration`), which checks, stores, and puts it into effect.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::dto::rfc3339;
use crate::api::error::ErrorBody;
use crate::api::{
    authenticate, etag, if_match, json_body, json_error, parse_json, ApiError, State,
};
use crate::model::{Properties, TenantConfig};

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

/// Read the tenant's configuration in effect; its `ETag` is its version.
#[utoipa::path(get, path = "/api/v1/configuration", tag = "configuration",
    responses((status = 200, description = "with ETag", body = ConfigurationDto),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = ["challenge:configuration:get"])))]
pub async fn get(req: HttpRequest, state: State) -> Result<HttpResponse, ApiError> {
    let principal = authenticate(&req, &state)?;
    let config = state.engine.configuration(&principal).await?;
    Ok(respond(&config))
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
    let principal = authenticate(&req, &state)?;
    let expected = if_match(&req).ok_or(ApiError::PreconditionRequired)?;
    let body = json_body(&req, payload, state.settings.server.body_limit_bytes).await?;
    let properties = parse_body(&body)?;
    let config = state
        .engine
        .replace_configuration(&principal, expected, properties)
        .await?;
    Ok(respond(&config))
}
