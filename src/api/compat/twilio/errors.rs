//! The Twilio error body, `{"code", "message", "more_info", "status"}` (the SDK raises
//! `TwilioRestException` from it), and the translation of the engine's errors into
//! Twilio's codes. The status of a domain error is the one `api::error::status` picks,
//! except where Twilio's own contract names another (a refused answer is 403 with its
//! 603xx code, not 409): the SDK's callers branch on these codes.

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};

use crate::api::ApiError;
use crate::engine::Error;

/// Generic Twilio codes, and the Verify codes the spec lists.
pub const AUTHENTICATION_FAILED: u32 = 20003;
pub const NOT_FOUND: u32 = 20404;
pub const INVALID_PARAMETER: u32 = 60200;
pub const TOO_MANY_REQUESTS: u32 = 60312;
pub const FACTOR_UNVERIFIED: u32 = 60318;
pub const ALREADY_RESPONDED: u32 = 60322;
pub const EXPIRED: u32 = 60323;
pub const VERIFICATION_FAILED: u32 = 60324;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TwilioError {
    pub status: u16,
    pub code: u32,
    pub message: String,
}

impl std::fmt::Display for TwilioError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.message, self.code)
    }
}

impl TwilioError {
    pub fn new(status: u16, code: u32, message: impl Into<String>) -> Self {
        TwilioError {
            status,
            code,
            message: message.into(),
        }
    }

    /// 400 60200: a parameter that is missing, malformed or out of range.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(400, INVALID_PARAMETER, message)
    }

    /// 401 20003.
    pub fn unauthenticated() -> Self {
        Self::new(401, AUTHENTICATION_FAILED, "Authenticate")
    }

    /// 404 20404, for an absent resource and for another account's alike.
    pub fn not_found() -> Self {
        Self::new(404, NOT_FOUND, "The requested resource was not found")
    }
}

impl From<Error> for TwilioError {
    fn from(e: Error) -> Self {
        let status = crate::api::error::status(&e).as_u16();
        let message = e.to_string();
        match e {
            Error::ChallengeNotFound | Error::FactorNotFound | Error::PolicyNotFound => {
                TwilioError::not_found()
            }
            Error::Conflict {
                code: "factor_not_verified",
                ..
            } => TwilioError::new(403, FACTOR_UNVERIFIED, "The factor is not verified"),
            Error::Conflict {
                code: "already_answered" | "cancelled" | "failed",
                ..
            } => TwilioError::new(
                403,
                ALREADY_RESPONDED,
                "The challenge was already responded",
            ),
            Error::Conflict {
                code: "expired", ..
            } => TwilioError::new(403, EXPIRED, "The challenge has expired"),
            Error::Invalid {
                code: "invalid_signature",
                ..
            } => TwilioError::new(
                403,
                VERIFICATION_FAILED,
                "The challenge could not be verified: AuthPayload is not the factor's signature",
            ),
            Error::RateLimited { .. } | Error::Throttled { .. } => {
                TwilioError::new(429, TOO_MANY_REQUESTS, message)
            }
            Error::QuotaExceeded(_) | Error::StoredQuotaExceeded(_) => {
                TwilioError::new(429, 20429, message)
            }
            Error::Forbidden(_) => TwilioError::new(403, 20403, message),
            Error::DeviceUnauthorized { .. } => TwilioError::unauthenticated(),
            Error::NotReady | Error::StorageUnavailable | Error::Unavailable => {
                TwilioError::new(503, 20503, message)
            }
            Error::Internal => TwilioError::new(500, 20500, message),
            _ if status < 500 => TwilioError::new(status, INVALID_PARAMETER, message),
            _ => TwilioError::new(status, 20500, message),
        }
    }
}

impl From<ApiError> for TwilioError {
    fn from(e: ApiError) -> Self {
        match e {
            ApiError::Domain(e) => e.into(),
            ApiError::Unauthorized | ApiError::TokenLifetimeExceeded(_) => {
                TwilioError::unauthenticated()
            }
            other => {
                let status = other.status_code().as_u16();
                TwilioError::new(status, INVALID_PARAMETER, other.to_string())
            }
        }
    }
}

impl ResponseError for TwilioError {
    fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status_code());
        if self.status == 401 {
            response.insert_header((header::WWW_AUTHENTICATE, "Basic realm=\"Twilio API\""));
        }
        response.json(serde_json::json!({
            "code": self.code,
            "message": self.message,
            "more_info": format!("https://www.twilio.com/docs/errors/{}", self.code),
            "status": self.status,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_take_twilio_codes() {
        let cases = [
            (Error::ChallengeNotFound, 404, NOT_FOUND),
            (
                Error::conflict("factor_not_verified", "x"),
                403,
                FACTOR_UNVERIFIED,
            ),
            (
                Error::conflict("already_answered", "x"),
                403,
                ALREADY_RESPONDED,
            ),
            (Error::conflict("expired", "x"), 403, EXPIRED),
            (
                Error::invalid("invalid_signature", "x"),
                403,
                VERIFICATION_FAILED,
            ),
            (
                Error::invalid("field_too_long", "x"),
                400,
                INVALID_PARAMETER,
            ),
            (Error::StorageUnavailable, 503, 20503),
        ];
        for (error, status, code) in cases {
            let e = TwilioError::from(error);
            assert_eq!((e.status, e.code), (status, code), "{e}");
        }
    }

    #[test]
    fn the_body_has_the_four_fields_the_sdk_reads() {
        let response = TwilioError::unauthenticated().error_response();
        assert_eq!(response.status(), 401);
        let body = actix_web::body::to_bytes(response.into_body());
        let body = futures_util::FutureExt::now_or_never(body)
            .unwrap()
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["code"], 20003);
        assert_eq!(v["status"], 401);
        assert_eq!(v["more_info"], "https://www.twilio.com/docs/errors/20003");
        assert!(v["message"].is_string());
    }
}
