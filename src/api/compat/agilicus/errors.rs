//! Agilicus' error body, `ErrorMessage` (`{"error_code", "error_message"}`), and the
//! translation of the engine's errors into it. The SDK parses no error body (any
//! non-2xx raises `ApiException(status)`), so the status is what its callers branch on:
//! it is the one `api::error::status` picks, except that every refused answer is a bare
//! 400 `answer_rejected` (the contract gives a wrong answer no reason).

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};

use crate::api::ApiError;
use crate::engine::Error;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgilicusError {
    pub status: u16,
    /// Stable snake_case code (the native face's code where one exists).
    pub code: &'static str,
    pub message: String,
}

impl std::fmt::Display for AgilicusError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.message, self.code)
    }
}

impl AgilicusError {
    pub fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        AgilicusError {
            status,
            code,
            message: message.into(),
        }
    }

    /// 400 with `code`: a request the contract refuses.
    pub fn invalid(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(400, code, message)
    }

    /// 401: no valid bearer token.
    pub fn unauthorized() -> Self {
        Self::new(401, "unauthorized", "a valid bearer token is required")
    }

    /// 404, for an absent challenge or enrollment and for a deleted one alike.
    pub fn not_found() -> Self {
        Self::new(404, "not_found", "no such resource")
    }

    /// 400 and nothing more: an answer that was not accepted, whatever the reason.
    pub fn answer_rejected() -> Self {
        Self::new(400, "answer_rejected", "the answer was not accepted")
    }

    /// What an answerer may learn of a refused answer: that it was refused (400), or a
    /// refusal that says nothing about the challenge (not found, slow down, unavailable).
    pub fn for_answer(self) -> Self {
        match self.status {
            404 | 429 | 503 => self,
            s if s >= 500 => self,
            _ => Self::answer_rejected(),
        }
    }
}

impl From<Error> for AgilicusError {
    fn from(e: Error) -> Self {
        let status = crate::api::error::status(&e).as_u16();
        match e {
            Error::ChallengeNotFound | Error::FactorNotFound => AgilicusError::not_found(),
            Error::WrongAnswer { .. } | Error::WrongCode | Error::AnswerRejected => {
                AgilicusError::answer_rejected()
            }
            other => AgilicusError::new(status, other.code(), other.to_string()),
        }
    }
}

impl From<ApiError> for AgilicusError {
    fn from(e: ApiError) -> Self {
        match e {
            ApiError::Domain(e) => e.into(),
            ApiError::Unauthorized => AgilicusError::unauthorized(),
            other => AgilicusError::new(
                other.status_code().as_u16(),
                other.code(),
                other.to_string(),
            ),
        }
    }
}

impl ResponseError for AgilicusError {
    fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status_code());
        if self.status == 401 {
            response.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
        }
        response.json(serde_json::json!({
            "error_code": self.code,
            "error_message": self.message,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_answers_say_only_that() {
        for e in [
            Error::WrongCode,
            Error::AnswerRejected,
            Error::conflict("already_answered", "x"),
            Error::conflict("expired", "x"),
        ] {
            let e = AgilicusError::from(e).for_answer();
            assert_eq!((e.status, e.code), (400, "answer_rejected"), "{e}");
        }
        let e = AgilicusError::from(Error::ChallengeNotFound).for_answer();
        assert_eq!(e.status, 404);
        let e = AgilicusError::from(Error::RateLimited {
            retry_after_seconds: 1,
        })
        .for_answer();
        assert_eq!(e.status, 429);
    }

    #[test]
    fn the_body_is_an_error_message() {
        let response = AgilicusError::invalid("invalid_field", "spec is required").error_response();
        assert_eq!(response.status(), 400);
        let body = actix_web::body::to_bytes(response.into_body());
        let body = futures_util::FutureExt::now_or_never(body)
            .unwrap()
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["error_code"], "invalid_field");
        assert_eq!(v["error_message"], "spec is required");
        assert_eq!(v.as_object().unwrap().len(), 2);
    }
}
