//! THE mapping from errors to HTTP: every status code the API returns is chosen here —
//! the engine's domain errors ([`status`]) and the few that only HTTP knows
//! ([`ApiError`]). Each face renders its own body: the native one is
//! `{"error": {"code", "message"}}` with a stable snake_case code (plus `attempts_left`
//! on `wrong_answer`, `current_version` on `version_conflict`); the answer pages render
//! HTML with the same statuses. A vendor face renders a domain error with the status
//! its vendor's contract names where that differs (`compat::twilio::errors`: a refused
//! answer is Twilio's 403 with its code; `compat::acs::errors`: a stale `version` sent in
//! a body is 409), and with this one everywhere else.

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

use crate::engine::Error;

/// An error of the native face: a domain error, or one of the request's HTTP shape.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    #[error("a valid bearer token is required")]
    Unauthorized,
    #[error("the bearer token must carry `iat` and live at most {0} seconds (`exp - iat`)")]
    TokenLifetimeExceeded(u64),
    #[error("send If-Match with the ETag of the version you read")]
    PreconditionRequired,
    #[error("no such route")]
    RouteNotFound,
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("the request body exceeds {0} bytes")]
    BodyTooLarge(usize),
    #[error("the request body did not arrive within {0} ms")]
    RequestTimeout(u64),
    #[error("send JSON with Content-Type: application/json")]
    UnsupportedMediaType,
    #[error(transparent)]
    Domain(#[from] Error),
}

/// The status of a domain error, for every face.
pub fn status(error: &Error) -> StatusCode {
    match error {
        Error::Forbidden(_) => StatusCode::FORBIDDEN,
        Error::DeviceUnauthorized { .. } => StatusCode::UNAUTHORIZED,
        Error::ChallengeNotFound
        | Error::PolicyNotFound
        | Error::FactorNotFound
        | Error::MethodNotFound => StatusCode::NOT_FOUND,
        Error::Invalid { .. }
        | Error::TypeNotEnabled(_)
        | Error::FactorTypeNotEnabled(_)
        | Error::WrongAnswer { .. }
        | Error::WrongCode
        | Error::AnswerRejected => StatusCode::BAD_REQUEST,
        Error::Conflict { .. } | Error::AliasTaken(_) => StatusCode::CONFLICT,
        Error::VersionConflict { .. } => StatusCode::PRECONDITION_FAILED,
        Error::QuotaExceeded(_)
        | Error::StoredQuotaExceeded(_)
        | Error::RateLimited { .. }
        | Error::Throttled { .. } => StatusCode::TOO_MANY_REQUESTS,
        Error::NotReady | Error::StorageUnavailable | Error::Unavailable => {
            StatusCode::SERVICE_UNAVAILABLE
        }
        Error::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// The `Retry-After` (seconds) a domain error carries, if any.
pub fn retry_after(error: &Error) -> Option<u64> {
    match error {
        Error::RateLimited {
            retry_after_seconds,
        }
        | Error::Throttled {
            retry_after_seconds,
            ..
        } => Some(*retry_after_seconds),
        Error::NotReady => Some(1),
        _ => None,
    }
}

impl ApiError {
    pub fn invalid(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::Domain(Error::invalid(code, message))
    }

    pub fn code(&self) -> &'static str {
        match self {
            ApiError::Unauthorized => "unauthorized",
            ApiError::TokenLifetimeExceeded(_) => "token_lifetime_exceeded",
            ApiError::PreconditionRequired => "precondition_required",
            ApiError::RouteNotFound => "not_found",
            ApiError::MethodNotAllowed => "method_not_allowed",
            ApiError::BodyTooLarge(_) => "body_too_large",
            ApiError::RequestTimeout(_) => "request_timeout",
            ApiError::UnsupportedMediaType => "unsupported_media_type",
            ApiError::Domain(e) => e.code(),
        }
    }

    /// An anonymous answerer learns nothing but "rejected" (or "slow down"); see
    /// [`Error::for_anonymous`]. The body's own HTTP shape may be reported.
    pub fn for_anonymous(self) -> Self {
        match self {
            ApiError::BodyTooLarge(_)
            | ApiError::RequestTimeout(_)
            | ApiError::UnsupportedMediaType => self,
            ApiError::Domain(e) => ApiError::Domain(e.for_anonymous()),
            _ => ApiError::Domain(Error::AnswerRejected),
        }
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// Stable snake_case code.
    pub code: &'static str,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempts_left: Option<u32>,
    /// On `version_conflict`: the version to read and send in `If-Match`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current_version: Option<u64>,
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::Unauthorized | ApiError::TokenLifetimeExceeded(_) => StatusCode::UNAUTHORIZED,
            ApiError::PreconditionRequired => StatusCode::PRECONDITION_REQUIRED,
            ApiError::RouteNotFound => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::BodyTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::RequestTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            ApiError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Domain(e) => status(e),
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status_code());
        match self {
            ApiError::Unauthorized => {
                response.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
            }
            ApiError::TokenLifetimeExceeded(_) => {
                response
                    .insert_header((header::WWW_AUTHENTICATE, "Bearer error=\"invalid_token\""));
            }
            ApiError::Domain(e) => {
                if let Some(seconds) = retry_after(e) {
                    response.insert_header((header::RETRY_AFTER, seconds.to_string()));
                }
            }
            _ => {}
        }
        let domain = match self {
            ApiError::Domain(e) => Some(e),
            _ => None,
        };
        response.json(ErrorBody {
            error: ErrorDetail {
                code: self.code(),
                message: self.to_string(),
                attempts_left: match domain {
                    Some(Error::WrongAnswer { attempts_left }) => Some(*attempts_left),
                    _ => None,
                },
                current_version: match domain {
                    Some(Error::VersionConflict { current_version }) => Some(*current_version),
                    _ => None,
                },
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::challenge::messages::ChallengeError;
    use crate::tenant::supervisor::SpawnError;

    #[test]
    fn store_failures_answer_503_storage_unavailable() {
        for e in [
            Error::from(ChallengeError::Store("disk full".into())),
            Error::from(SpawnError::Store("disk full".into())),
            Error::from(crate::store::StoreError::Closed),
        ] {
            assert_eq!(e, Error::StorageUnavailable);
            let e = ApiError::from(e);
            assert_eq!(e.code(), "storage_unavailable");
            assert_eq!(e.error_response().status(), StatusCode::SERVICE_UNAVAILABLE);
        }
    }

    #[test]
    fn not_ready_asks_to_retry_in_a_second() {
        let response = ApiError::from(Error::NotReady).error_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers().get(header::RETRY_AFTER).unwrap(), "1");
        assert_eq!(Error::NotReady.code(), "not_ready");
    }
}
