//! `/api/v1/policies`: a tenant's named policies (spec/onewelcome-acs.md, "Management
//! API"). Each handler authenticates and parses, makes one engine call (`engine::
//! policies`: the checks, the versioned store write, durability) and renders the
//! outcome. The request and response shapes of policies live here.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use super::dto::rfc3339;
use crate::api::error::ErrorBody;
use crate::api::{
    authenticate, etag, if_match, json_body, json_error, parse_json, query, ApiError, State,
};
use crate::engine::policies::parse_alias;
use crate::engine::Error;
use crate::model::{Policy, PolicyAlias, PolicySpec};
use crate::store::Precondition;

pub const DEFAULT_PAGE_SIZE: usize = 20;
pub const MAX_PAGE_SIZE: usize = 100;
/// A policy as the API shows it. A request body has the same shape: `alias` is required
/// on create (and may be left out of a replace); `version`, `created_at` and
/// `updated_at` are set by the server and ignored in requests, so a read can be sent
/// back as it is.
#[derive(Debug, Serialize, ToSchema)]
pub struct PolicyDto {
    pub alias: String,
    #[serde(flatten)]
    pub spec: PolicySpec,
    pub version: u64,
    pub created_at: String,
    pub updated_at: String,
}

impl PolicyDto {
    pub fn new(p: &Policy) -> Self {
        PolicyDto {
            alias: p.alias.to_string(),
            spec: p.spec.clone(),
            version: p.version,
            created_at: rfc3339(p.created_at),
            updated_at: rfc3339(p.updated_at),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PolicyList {
    pub policies: Vec<PolicyDto>,
    pub next_page_token: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct PolicyListQuery {
    /// 1..=100, default 20.
    #[param(minimum = 1, maximum = 100)]
    pub page_size: Option<usize>,
    /// `next_page_token` of the previous page.
    #[param(pattern = "^[a-z0-9][a-z0-9._-]{0,63}$")]
    pub page_token: Option<String>,
}

/// An alias from the path; one that cannot exist is simply not found.
fn path_alias(raw: &str) -> Result<PolicyAlias, ApiError> {
    PolicyAlias::parse(raw).ok_or(Error::PolicyNotFound.into())
}

/// Splits a policy body into its alias (if given) and its spec, dropping the
/// server-set fields.
fn parse_body(body: &[u8]) -> Result<(Option<String>, PolicySpec), ApiError> {
    let mut object: serde_json::Map<String, Value> = parse_json(body)?;
    let alias = match object.remove("alias") {
        None | Some(Value::Null) => None,
        Some(Value::String(alias)) => Some(alias),
        Some(_) => return Err(ApiError::invalid("invalid_field", "alias must be a string")),
    };
    for server_set in ["version", "created_at", "updated_at"] {
        object.remove(server_set);
    }
    let spec = serde_json::from_value(Value::Object(object)).map_err(json_error)?;
    Ok((alias, spec))
}

fn with_etag(mut response: actix_web::HttpResponseBuilder, policy: &Policy) -> HttpResponse {
    response
        .insert_header(etag(policy.version))
        .json(PolicyDto::new(policy))
}

/// Create a policy.
#[utoipa::path(post, path = "/api/v1/policies", tag = "policies",
    request_body(content = PolicyDto, description = "alias and type required; version, created_at and updated_at are ignored"),
    responses(
        (status = 201, description = "created, with ETag and Location", body = PolicyDto),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 409, description = "alias_taken", body = ErrorBody), (status = 413, body = ErrorBody)),
    security(("bearer" = ["challenge:policy:post"])))]
pub async fn create(
    req: HttpRequest,
    payload: web::Payload,
    state: State,
) -> Result<HttpResponse, ApiError> {
    let principal = authenticate(&req, &state)?;
    let body = json_body(&req, payload, state.settings.server.body_limit_bytes).await?;
    let (alias, spec) = parse_body(&body)?;
    let alias = alias.ok_or_else(|| ApiError::invalid("invalid_field", "alias is required"))?;
    let policy = state
        .engine
        .create_policy(&principal, parse_alias("alias", &alias)?, spec)
        .await?;
    let mut response = HttpResponse::Created();
    response.insert_header((
        header::LOCATION,
        format!("/api/v1/policies/{}", policy.alias),
    ));
    Ok(with_etag(response, &policy))
}

/// List the tenant's policies in alias order, a page at a time.
#[utoipa::path(get, path = "/api/v1/policies", tag = "policies",
    params(PolicyListQuery),
    responses((status = 200, body = PolicyList), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = ["challenge:policy:get"])))]
pub async fn list(req: HttpRequest, state: State) -> Result<HttpResponse, ApiError> {
    let principal = authenticate(&req, &state)?;
    let q: PolicyListQuery = query(&req)?;
    let (page_size, after) = crate::api::page(
        q.page_size,
        DEFAULT_PAGE_SIZE,
        MAX_PAGE_SIZE,
        q.page_token.as_deref(),
        PolicyAlias::parse,
    )?;
    let (page, next) = state.engine.policies(&principal, after, page_size).await?;
    Ok(HttpResponse::Ok().json(PolicyList {
        policies: page.iter().map(PolicyDto::new).collect(),
        next_page_token: next.map(|alias| alias.to_string()),
    }))
}

/// Read a policy; its `ETag` is its version.
#[utoipa::path(get, path = "/api/v1/policies/{alias}", tag = "policies",
    params(("alias" = String, Path)),
    responses((status = 200, description = "with ETag", body = PolicyDto), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, description = "policy_not_found", body = ErrorBody)),
    security(("bearer" = ["challenge:policy:get"])))]
pub async fn get(
    req: HttpRequest,
    path: web::Path<String>,
    state: State,
) -> Result<HttpResponse, ApiError> {
    let principal = authenticate(&req, &state)?;
    let policy = state.engine.policy(&principal, path_alias(&path)?).await?;
    Ok(with_etag(HttpResponse::Ok(), &policy))
}

/// Replace a policy as a whole. `If-Match` must carry the version read (its ETag).
#[utoipa::path(put, path = "/api/v1/policies/{alias}", tag = "policies",
    params(("alias" = String, Path),
        ("If-Match" = String, Header, description = "the ETag of the version replaced, e.g. \"3\"")),
    request_body(content = PolicyDto, description = "alias may be left out; version, created_at and updated_at are ignored"),
    responses((status = 200, description = "replaced; the new ETag", body = PolicyDto),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, description = "policy_not_found", body = ErrorBody),
        (status = 412, description = "version_conflict, with current_version", body = ErrorBody),
        (status = 428, description = "precondition_required: no If-Match", body = ErrorBody)),
    security(("bearer" = ["challenge:policy:put"])))]
pub async fn replace(
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
    state: State,
) -> Result<HttpResponse, ApiError> {
    let principal = authenticate(&req, &state)?;
    let alias = path_alias(&path)?;
    let expected = if_match(&req).ok_or(ApiError::PreconditionRequired)?;
    let body = json_body(&req, payload, state.settings.server.body_limit_bytes).await?;
    let (body_alias, spec) = parse_body(&body)?;
    if body_alias.is_some_and(|a| a != alias.as_str()) {
        return Err(ApiError::invalid(
            "invalid_field",
            format!("alias cannot change: leave it out or send {alias}"),
        ));
    }
    let policy = state
        .engine
        .replace_policy(&principal, alias, expected, spec)
        .await?;
    Ok(with_etag(HttpResponse::Ok(), &policy))
}

/// Delete a policy. Challenges created from it finish under their own copy.
#[utoipa::path(delete, path = "/api/v1/policies/{alias}", tag = "policies",
    params(("alias" = String, Path),
        ("If-Match" = Option<String>, Header, description = "optional: delete only this version")),
    responses((status = 204, description = "deleted"), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, description = "policy_not_found", body = ErrorBody),
        (status = 412, description = "version_conflict", body = ErrorBody)),
    security(("bearer" = ["challenge:policy:delete"])))]
pub async fn delete(
    req: HttpRequest,
    path: web::Path<String>,
    state: State,
) -> Result<HttpResponse, ApiError> {
    let principal = authenticate(&req, &state)?;
    let alias = path_alias(&path)?;
    let expected = if_match(&req).unwrap_or(Precondition::Any);
    state
        .engine
        .delete_policy(&principal, alias, expected)
        .await?;
    Ok(HttpResponse::NoContent().finish())
}
