//! `/compat/acs/v1/policies` (the ACS Management API) and `/compat/acs/v1/configuration`
//! (its Global Configuration API): the native policy and configuration calls in ACS
//! names. A policy's ID is its alias. Replaces are optimistically locked as the spec's
//! "Optimistic locking" says: `If-Match` (stale: 412), or, without it, the `version`
//! the body carries (stale: 409); neither: 428.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::Value;

use super::dto::*;
use super::errors::AcsError;
use crate::api::native::policies::{DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE};
use crate::api::{
    authenticate, etag, if_match, json_body, json_error, parse_json, query, ApiError, State,
};
use crate::engine::policies::parse_alias;
use crate::engine::Error;
use crate::model::{Policy, PolicyAlias, TenantConfig};
use crate::store::Precondition;

/// An alias from the path; one that cannot exist is simply not found.
fn path_alias(raw: &str) -> Result<PolicyAlias, ApiError> {
    PolicyAlias::parse(raw).ok_or(Error::PolicyNotFound.into())
}

/// A PUT or POST body as a JSON object, less what the server sets (`createdAt`,
/// `updatedAt`, and `version`, returned as the body's lock when it is a number).
fn split_body(
    body: &[u8],
    server_set: &[&str],
) -> Result<(serde_json::Map<String, Value>, Option<u64>), ApiError> {
    let mut object: serde_json::Map<String, Value> = parse_json(body)?;
    let version = match object.remove("version") {
        None | Some(Value::Null) => None,
        Some(v) => Some(v.as_u64().ok_or_else(|| {
            ApiError::invalid("invalid_field", "version must be a non-negative integer")
        })?),
    };
    for field in server_set {
        object.remove(*field);
    }
    Ok((object, version))
}

/// A policy body: its alias (if given), the body's `version` (if given) and its spec.
fn parse_policy(body: &[u8]) -> Result<(Option<String>, Option<u64>, AcsPolicySpec), AcsError> {
    let (mut object, version) = split_body(body, &["createdAt", "updatedAt"])?;
    let alias = match object.remove("alias") {
        None | Some(Value::Null) => None,
        Some(Value::String(alias)) => Some(alias),
        Some(_) => return Err(ApiError::invalid("invalid_field", "alias must be a string").into()),
    };
    let spec = serde_json::from_value(Value::Object(object))
        .map_err(|e| AcsError::as_given(json_error(e)))?;
    Ok((alias, version, spec))
}

/// What a replace is conditioned on, and whether it came from the body.
fn precondition(
    req: &HttpRequest,
    body_version: Option<u64>,
) -> Result<(Precondition, bool), ApiError> {
    match (if_match(req), body_version) {
        (Some(expected), _) => Ok((expected, false)),
        (None, Some(version)) => Ok((Precondition::OneOf(vec![version]), true)),
        (None, None) => Err(ApiError::PreconditionRequired),
    }
}

fn with_etag(mut response: actix_web::HttpResponseBuilder, policy: &Policy) -> HttpResponse {
    response
        .insert_header(etag(policy.version))
        .json(AcsPolicy::from(policy))
}

/// Create a named policy: 201 with `ETag` and `Location`.
pub async fn create(
    req: HttpRequest,
    payload: web::Payload,
    state: State,
) -> Result<HttpResponse, AcsError> {
    let principal = authenticate(&req, &state)?;
    let body = json_body(&req, payload, state.settings.server.body_limit_bytes).await?;
    let (alias, _, spec) = parse_policy(&body)?;
    let alias = alias.ok_or_else(|| ApiError::invalid("invalid_field", "alias is required"))?;
    let alias = parse_alias("alias", &alias)?;
    let policy = state
        .engine
        .create_policy(&principal, alias, spec.into_native()?)
        .await?;
    let mut response = HttpResponse::Created();
    response.insert_header((
        header::LOCATION,
        format!("/compat/acs/v1/policies/{}", policy.alias),
    ));
    Ok(with_etag(response, &policy))
}

/// A page of policy IDs (aliases) in alias order.
pub async fn list(req: HttpRequest, state: State) -> Result<HttpResponse, AcsError> {
    let principal = authenticate(&req, &state)?;
    let q: AcsPageQuery = query(&req).map_err(AcsError::as_given)?;
    let (page_size, after) = crate::api::page(
        q.page_size,
        DEFAULT_PAGE_SIZE,
        MAX_PAGE_SIZE,
        q.page_token.as_deref(),
        PolicyAlias::parse,
    )?;
    let (page, next) = state.engine.policies(&principal, after, page_size).await?;
    Ok(HttpResponse::Ok().json(AcsPolicyIds {
        ids: page.iter().map(|p| p.alias.to_string()).collect(),
        next_page_token: next.map(|alias| alias.to_string()),
    }))
}

/// Read a policy by its ID; its `ETag` is its version.
pub async fn get(
    req: HttpRequest,
    path: web::Path<String>,
    state: State,
) -> Result<HttpResponse, AcsError> {
    let principal = authenticate(&req, &state)?;
    let policy = state.engine.policy(&principal, path_alias(&path)?).await?;
    Ok(with_etag(HttpResponse::Ok(), &policy))
}

/// Replace a policy as a whole (full replace, optimistically locked).
pub async fn replace(
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
    state: State,
) -> Result<HttpResponse, AcsError> {
    let principal = authenticate(&req, &state)?;
    let alias = path_alias(&path)?;
    let body = json_body(&req, payload, state.settings.server.body_limit_bytes).await?;
    let (body_alias, version, spec) = parse_policy(&body)?;
    let (expected, from_body) = precondition(&req, version)?;
    if body_alias.is_some_and(|a| a != alias.as_str()) {
        return Err(ApiError::invalid(
            "invalid_field",
            format!("alias cannot change: leave it out or send {alias}"),
        )
        .into());
    }
    let spec = spec.into_native()?;
    match state
        .engine
        .replace_policy(&principal, alias, expected, spec)
        .await
    {
        Ok(policy) => Ok(with_etag(HttpResponse::Ok(), &policy)),
        Err(e) if from_body => Err(AcsError::from_body_version(e.into())),
        Err(e) => Err(e.into()),
    }
}

/// Delete a policy: 204. Challenges created from it finish under their own copy.
pub async fn delete(
    req: HttpRequest,
    path: web::Path<String>,
    state: State,
) -> Result<HttpResponse, AcsError> {
    let principal = authenticate(&req, &state)?;
    let alias = path_alias(&path)?;
    let expected = if_match(&req).unwrap_or(Precondition::Any);
    state
        .engine
        .delete_policy(&principal, alias, expected)
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

fn respond(config: &TenantConfig) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header(etag(config.version))
        .json(AcsConfiguration::from(config))
}

/// Every runtime configuration property of the tenant, with `ETag`.
pub async fn configuration(req: HttpRequest, state: State) -> Result<HttpResponse, AcsError> {
    let principal = authenticate(&req, &state)?;
    let config = state.engine.configuration(&principal).await?;
    Ok(respond(&config))
}

/// Replace every property at once; it applies from the next request on.
pub async fn replace_configuration(
    req: HttpRequest,
    payload: web::Payload,
    state: State,
) -> Result<HttpResponse, AcsError> {
    let principal = authenticate(&req, &state)?;
    let body = json_body(&req, payload, state.settings.server.body_limit_bytes).await?;
    let (object, version) = split_body(&body, &["updatedAt"])?;
    let (expected, from_body) = precondition(&req, version)?;
    let properties: AcsProperties = serde_json::from_value(Value::Object(object))
        .map_err(|e| AcsError::as_given(json_error(e)))?;
    match state
        .engine
        .replace_configuration(&principal, expected, properties.into())
        .await
    {
        Ok(config) => Ok(respond(&config)),
        Err(e) if from_body => Err(AcsError::from_body_version(e.into())),
        Err(e) => Err(e.into()),
    }
}
