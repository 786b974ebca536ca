//! The HTTP faces. Handlers are thin, each the same three steps: authenticate and parse
//! (into domain types), make one engine call (which checks the scope it needs), render
//! the reply. Only this module knows HTTP; only `error.rs` picks status codes.

pub mod client;
pub mod compat;
pub mod error;
pub mod native;
pub mod openapi;
pub mod ops;
pub mod pages;

use std::sync::Arc;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header;
use actix_web::middleware::Next;
use actix_web::{web, HttpRequest, HttpResponse};
use futures_util::StreamExt;

use crate::auth::{Principal, Verifier};
use crate::config::Settings;
use crate::engine::Engine;
use crate::store::Precondition;
use crate::tenant::Registry;
pub use client::{AnonymousLimiter, TrustedProxies};
pub use error::ApiError;

/// What every handler may use, shared.
pub struct ApiState {
    /// What every face calls; handlers reach challenges, policies and configuration
    /// only through it.
    pub engine: Engine,
    /// For the operations endpoints (readiness) only.
    pub registry: Arc<Registry>,
    pub verifier: Verifier,
    pub settings: Settings,
    pub anonymous: AnonymousLimiter,
    /// Whose forwarding headers say who an anonymous caller is.
    pub proxies: TrustedProxies,
    pub metrics: metrics_exporter_prometheus::PrometheusHandle,
    /// `/openapi.json`, encoded once: it describes this server's configuration.
    pub openapi: web::Bytes,
    /// The keys that verify tokens minted for actions (`/.well-known/jwks.json`).
    pub jwks: serde_json::Value,
    /// The bound address of the separate `/metrics` listener, if one is configured.
    pub metrics_addr: Option<std::net::SocketAddr>,
}

pub type State = web::Data<ApiState>;

/// Registers every route.
/// The operations routes answer at once; every other face is wrapped in [`until_ready`].
pub fn routes(cfg: &mut web::ServiceConfig) {
    ops::routes(cfg);
    cfg.service(
        web::scope("")
            .wrap(actix_web::middleware::from_fn(until_ready))
            .configure(native::routes)
            .configure(compat::twilio::routes)
            .configure(compat::acs::routes)
            .configure(compat::agilicus::routes)
            .configure(compat::apiture::routes)
            .configure(pages::routes),
    );
}

/// Middleware of every face but the operations routes: until the restore has finished
/// it answers 503 `not_ready` with `Retry-After: 1` — a create could not yet honour
/// idempotency keys, quotas or one-active-per-user, and a challenge not yet restored
/// would look absent.
async fn until_ready(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let ready = req
        .app_data::<State>()
        .is_none_or(|state| state.registry.is_ready());
    if ready {
        return next
            .call(req)
            .await
            .map(ServiceResponse::map_into_left_body);
    }
    let (req, _) = req.into_parts();
    let response = HttpResponse::from_error(ApiError::Domain(crate::engine::Error::NotReady));
    Ok(ServiceResponse::new(req, response).map_into_right_body())
}

/// The caller's principal if the request carries `Authorization`; `None` if it carries
/// none. A present but invalid token is always 401, never treated as anonymous.
pub fn bearer(req: &HttpRequest, state: &ApiState) -> Result<Option<Principal>, ApiError> {
    let Some(value) = req.headers().get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let token = value
        .to_str()
        .ok()
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .ok_or(ApiError::Unauthorized)?;
    match state.verifier.verify(token) {
        Ok(principal) => Ok(Some(principal)),
        Err(crate::auth::jwt::AuthError::LifetimeExceeded(max)) => {
            Err(ApiError::TokenLifetimeExceeded(max))
        }
        Err(reason) => {
            tracing::debug!(%reason, "bearer token refused");
            Err(ApiError::Unauthorized)
        }
    }
}

/// The caller's principal, or 401. Which scopes it needs, the engine checks.
pub fn authenticate(req: &HttpRequest, state: &ApiState) -> Result<Principal, ApiError> {
    bearer(req, state)?.ok_or(ApiError::Unauthorized)
}

/// Reads a JSON request body, refusing other media types and bodies over `limit`.
pub async fn json_body(
    req: &HttpRequest,
    payload: web::Payload,
    limit: usize,
) -> Result<web::Bytes, ApiError> {
    if let Some(ct) = req.headers().get(header::CONTENT_TYPE) {
        let ct = ct.to_str().unwrap_or_default();
        let essence = ct.split(';').next().unwrap_or_default().trim();
        if !essence.eq_ignore_ascii_case("application/json") {
            return Err(ApiError::UnsupportedMediaType);
        }
    }
    read_body(req, payload, limit).await
}

/// Reads a request body of at most `limit` bytes, within `server.body_read_timeout_ms`
/// of the head: 413 `body_too_large`, 408 `request_timeout`.
pub async fn read_body(
    req: &HttpRequest,
    payload: web::Payload,
    limit: usize,
) -> Result<web::Bytes, ApiError> {
    let timeout_ms = req
        .app_data::<State>()
        .map_or(10_000, |s| s.settings.server.body_read_timeout_ms);
    tokio::time::timeout(
        std::time::Duration::from_millis(timeout_ms),
        read_limited(req, payload, limit),
    )
    .await
    .unwrap_or(Err(ApiError::RequestTimeout(timeout_ms)))
}

async fn read_limited(
    req: &HttpRequest,
    mut payload: web::Payload,
    limit: usize,
) -> Result<web::Bytes, ApiError> {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(ApiError::BodyTooLarge(limit));
    }
    let mut body = web::BytesMut::with_capacity(declared.unwrap_or(256).min(limit));
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|_| {
            ApiError::invalid("malformed_body", "the request body could not be read")
        })?;
        if body.len() + chunk.len() > limit {
            return Err(ApiError::BodyTooLarge(limit));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// Parses JSON into `T`, mapping serde's complaint onto a stable code:
/// `malformed_json` (not JSON), `unknown_field`, `invalid_field` (wrong type, missing or
/// out-of-domain value).
pub fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    if body.is_empty() {
        return Err(ApiError::invalid(
            "malformed_json",
            "the request body is empty; send a JSON object",
        ));
    }
    let mut value: serde_json::Value = serde_json::from_slice(body).map_err(json_error)?;
    integral_numbers_as_integers(&mut value);
    serde_json::from_value(value).map_err(json_error)
}

/// `10.0` is the integer 10 in JSON Schema (and to most JSON encoders), but serde takes
/// only `10` for an integer field: a number without a fractional part, within `i64` or
/// `u64`, is read as the integer it is.
fn integral_numbers_as_integers(value: &mut serde_json::Value) {
    use serde_json::Value;
    match value {
        Value::Number(n) if n.is_f64() => {
            let f = n.as_f64().unwrap_or(f64::NAN);
            // 2^63 is exact as a float; below it (and below 2^64) the casts are exact.
            let two_63 = -(i64::MIN as f64);
            let integer = if f.fract() != 0.0 {
                None
            } else if (-two_63..two_63).contains(&f) {
                Some(serde_json::Number::from(f as i64))
            } else if (0.0..2.0 * two_63).contains(&f) {
                Some(serde_json::Number::from(f as u64))
            } else {
                None
            };
            if let Some(integer) = integer {
                *n = integer;
            }
        }
        Value::Array(items) => items.iter_mut().for_each(integral_numbers_as_integers),
        Value::Object(map) => map.values_mut().for_each(integral_numbers_as_integers),
        _ => {}
    }
}

/// serde's complaint about JSON (from bytes or from a `Value`) as a stable code; see
/// [`parse_json`].
pub fn json_error(e: serde_json::Error) -> ApiError {
    use serde_json::error::Category;
    let message = e.to_string();
    let code = match e.classify() {
        Category::Syntax | Category::Eof | Category::Io => "malformed_json",
        Category::Data if message.starts_with("unknown field") => "unknown_field",
        Category::Data => "invalid_field",
    };
    ApiError::invalid(code, message)
}

/// Parses the query string into `T`; any complaint is `invalid_query`.
pub fn query<T: serde::de::DeserializeOwned>(req: &HttpRequest) -> Result<T, ApiError> {
    serde_urlencoded::from_str(req.query_string())
        .map_err(|e| ApiError::invalid("invalid_query", e.to_string()))
}

/// A list's page: its size (`page_size`, default `default`, 1..=`max`) and where it starts
/// (`page_token`, parsed by `parse`).
pub fn page<T>(
    page_size: Option<usize>,
    default: usize,
    max: usize,
    page_token: Option<&str>,
    parse: impl Fn(&str) -> Option<T>,
) -> Result<(usize, Option<T>), ApiError> {
    let size = page_size.unwrap_or(default);
    if size == 0 || size > max {
        return Err(ApiError::invalid(
            "invalid_query",
            format!("page_size must be between 1 and {max}"),
        ));
    }
    let after = page_token
        .map(|t| {
            parse(t).ok_or_else(|| ApiError::invalid("invalid_query", "page_token is not valid"))
        })
        .transpose()?;
    Ok((size, after))
}

/// The `ETag` header of a versioned resource (a policy, a tenant's configuration).
pub fn etag(version: u64) -> (header::HeaderName, String) {
    (header::ETAG, format!("\"{version}\""))
}

/// What an `If-Match` header admits (RFC 9110 §13.1.1): `*` any current version; else
/// the versions of the strong entity tags it lists (`"3"`, the ETag this API sends, or
/// a bare `3`). A weak or unreadable tag matches nothing, so a write conditioned only on
/// such tags is refused as stale (412). `None` without the header.
pub fn if_match(req: &HttpRequest) -> Option<Precondition> {
    let value = req.headers().get(header::IF_MATCH)?;
    let text = value.to_str().unwrap_or_default().trim();
    if text == "*" {
        return Some(Precondition::Any);
    }
    let versions = text
        .split(',')
        .filter_map(|tag| {
            let tag = tag.trim();
            let bare = tag
                .strip_prefix('"')
                .and_then(|t| t.strip_suffix('"'))
                .unwrap_or(tag);
            bare.parse().ok()
        })
        .collect();
    Some(Precondition::OneOf(versions))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integral_numbers_become_integers_and_fractions_stay() {
        let mut value =
            serde_json::json!({"a": 10.0, "b": [-3.0, 2.5], "c": 1e19, "d": 1e300, "e": 7});
        integral_numbers_as_integers(&mut value);
        assert_eq!(value["a"].as_u64(), Some(10));
        assert_eq!(value["b"][0].as_i64(), Some(-3));
        assert_eq!(value["b"][1].as_f64(), Some(2.5));
        assert_eq!(value["c"].as_u64(), Some(10_000_000_000_000_000_000));
        assert!(value["d"].is_f64(), "beyond u64: left as it is");
        assert_eq!(value["e"].as_u64(), Some(7));
    }
}
