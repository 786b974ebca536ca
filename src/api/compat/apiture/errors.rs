//! The Apiture error body, `{"_error": {"_id", "type", "message", "occurredAt"}}` (HAL
//! style; the step-up body adds `_embedded.challenge`), and the translation of the
//! engine's errors into Apiture's error types. The types the spec's table names are
//! used where they fit (`challengeNotFound`, `authenticatorAttemptsExceeded`,
//! `challengedExpired`, …); any other refusal takes the camelCase of the engine's stable
//! code (`invalid_field` → `invalidField`), with the status `api::error::status` picks.

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use rand::RngCore;

use crate::api::ApiError;
use crate::engine::Error;

pub const UNAUTHORIZED: &str = "unauthorized";
pub const MISSING_API_KEY: &str = "missingApiKey";
pub const INVALID_API_KEY: &str = "invalidApiKey";
pub const CHALLENGE_NOT_FOUND: &str = "challengeNotFound";
pub const AUTHENTICATOR_NOT_FOUND: &str = "authenticatorNotFound";
pub const ATTEMPTS_EXCEEDED: &str = "authenticatorAttemptsExceeded";
pub const NOT_COMPLETABLE: &str = "authenticatorNotCompletable";
pub const INVALID_STATE: &str = "invalidAuthenticatorState";
pub const INVALID_ATTRIBUTES: &str = "invalidAuthenticatorAttributes";
pub const EXPIRED: &str = "challengedExpired";
pub const NOT_VERIFIED: &str = "challengedNotVerified";
pub const ALREADY_REDEEMED: &str = "challengedAlreadyRedeemed";
pub const REDEEM_CONFLICT: &str = "redeemChallengeConflict";
pub const MISSING_HEADER: &str = "missingApitureChallengeHeader";
pub const CHALLENGE_REF_NOT_FOUND: &str = "challengeRefNotFound";
pub const UNKNOWN_TYPE: &str = "unknownAuthenticatorType";
pub const NO_AUTHENTICATORS: &str = "noAuthenticators";
pub const INVALID_CHANNELS: &str = "invalidChannels";
pub const INVALID_REQUEST: &str = "invalidRequest";
pub const CHALLENGE_REQUIRED: &str = "challengeRequired";

#[derive(Debug, Clone, PartialEq)]
pub struct ApitureError {
    pub status: u16,
    pub kind: String,
    pub message: String,
    pub retry_after: Option<u64>,
}

impl std::fmt::Display for ApitureError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.kind, self.message)
    }
}

impl ApitureError {
    pub fn new(status: u16, kind: &str, message: impl Into<String>) -> Self {
        ApitureError {
            status,
            kind: kind.to_string(),
            message: message.into(),
            retry_after: None,
        }
    }

    /// 400 of a request this face cannot read.
    pub fn invalid(kind: &str, message: impl Into<String>) -> Self {
        Self::new(400, kind, message)
    }

    pub fn challenge_not_found() -> Self {
        Self::new(404, CHALLENGE_NOT_FOUND, "no such challenge")
    }

    pub fn authenticator_not_found() -> Self {
        Self::new(404, AUTHENTICATOR_NOT_FOUND, "no such authenticator")
    }

    /// The `_error` object: a fresh `_id`, the type, the message, now.
    pub fn body(kind: &str, message: &str) -> serde_json::Map<String, serde_json::Value> {
        let mut id = [0u8; 8];
        rand::thread_rng().fill_bytes(&mut id);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis() as crate::clock::Millis;
        let mut error = serde_json::Map::new();
        error.insert("_id".into(), hex::encode(id).into());
        error.insert("type".into(), kind.into());
        error.insert("message".into(), message.into());
        error.insert("occurredAt".into(), crate::clock::rfc3339(now).into());
        error
    }
}

/// `snake_case` → `camelCase`.
fn camel(code: &str) -> String {
    let mut out = String::with_capacity(code.len());
    let mut upper = false;
    for c in code.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

impl From<Error> for ApitureError {
    fn from(e: Error) -> Self {
        let status = crate::api::error::status(&e).as_u16();
        let retry_after = crate::api::error::retry_after(&e);
        let message = e.to_string();
        let kind = match &e {
            Error::ChallengeNotFound => CHALLENGE_NOT_FOUND.to_string(),
            Error::MethodNotFound => AUTHENTICATOR_NOT_FOUND.to_string(),
            Error::Conflict {
                code: "expired", ..
            } => EXPIRED.to_string(),
            Error::Conflict {
                code: "method_failed" | "failed",
                ..
            } => ATTEMPTS_EXCEEDED.to_string(),
            Error::Conflict {
                code: "method_not_started" | "already_answered",
                ..
            } => INVALID_STATE.to_string(),
            other => camel(other.code()),
        };
        ApitureError {
            status,
            kind,
            message,
            retry_after,
        }
    }
}

impl From<ApiError> for ApitureError {
    fn from(e: ApiError) -> Self {
        match e {
            ApiError::Domain(e) => e.into(),
            ApiError::Unauthorized => {
                Self::new(401, UNAUTHORIZED, "a valid bearer access token is required")
            }
            other => {
                let status = other.status_code().as_u16();
                Self::new(status, &camel(other.code()), other.to_string())
            }
        }
    }
}

impl ResponseError for ApitureError {
    fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status_code());
        if self.status == 401 {
            response.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
        }
        if let Some(seconds) = self.retry_after {
            response.insert_header((header::RETRY_AFTER, seconds.to_string()));
        }
        response.json(serde_json::json!({"_error": ApitureError::body(&self.kind, &self.message)}))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_take_apiture_types() {
        let cases = [
            (Error::ChallengeNotFound, 404, CHALLENGE_NOT_FOUND),
            (Error::MethodNotFound, 404, AUTHENTICATOR_NOT_FOUND),
            (Error::conflict("expired", "x"), 409, EXPIRED),
            (
                Error::conflict("method_failed", "x"),
                409,
                ATTEMPTS_EXCEEDED,
            ),
            (Error::invalid("invalid_field", "x"), 400, "invalidField"),
            (Error::StorageUnavailable, 503, "storageUnavailable"),
        ];
        for (error, status, kind) in cases {
            let e = ApitureError::from(error);
            assert_eq!((e.status, e.kind.as_str()), (status, kind), "{e}");
        }
    }

    #[test]
    fn the_body_is_a_hal_error() {
        let response = ApitureError::new(409, EXPIRED, "gone").error_response();
        assert_eq!(response.status(), 409);
        let body = actix_web::body::to_bytes(response.into_body());
        let body = futures_util::FutureExt::now_or_never(body)
            .unwrap()
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["_error"]["type"], EXPIRED);
        assert_eq!(v["_error"]["message"], "gone");
        assert_eq!(v["_error"]["_id"].as_str().unwrap().len(), 16);
        assert!(v["_error"]["occurredAt"].as_str().unwrap().ends_with('Z'));
    }
}
