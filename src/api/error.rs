//! THE mapping from domain errors to HTTP: every status code the API returns is chosen
//! here, and every error body is `{"error": {"code", "message"}}` with a stable
//! snake_case code (plus `attempts_left` on `wrong_answer`, `current_version` on
//! `version_conflict`).

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

use crate::auth::Scope;
use crate::challenge::kinds::token::AttemptError;
use crate::challenge::messages::ChallengeError;
use crate::challenge::state::Refusal;
use crate::model::ChallengeType;
use crate::store::StoreError;
use crate::tenant::supervisor::SpawnError;
use crate::tenant::Lookup;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    #[error("a valid bearer token is required")]
    Unauthorized,
    #[error("the token lacks the scope {}", .0.name())]
    Forbidden(Scope),
    #[error("no such challenge")]
    ChallengeNotFound,
    #[error("no such policy")]
    PolicyNotFound,
    #[error("a policy named {0} exists already")]
    AliasTaken(String),
    #[error("send If-Match with the ETag of the version you read")]
    PreconditionRequired,
    #[error("the version sent is stale; the current version is {current_version}")]
    VersionConflict { current_version: u64 },
    #[error("no such route")]
    RouteNotFound,
    #[error("method not allowed")]
    MethodNotAllowed,
    /// Input that failed validation; `code` is stable, `message` names the field.
    #[error("{message}")]
    Invalid { code: &'static str, message: String },
    #[error("the request body exceeds {0} bytes")]
    BodyTooLarge(usize),
    #[error("send JSON with Content-Type: application/json")]
    UnsupportedMediaType,
    #[error("challenge type {} is not enabled on this server", .0.as_str())]
    TypeNotEnabled(ChallengeType),
    #[error("wrong answer")]
    WrongAnswer { attempts_left: u32 },
    #[error("the answer was not accepted")]
    AnswerRejected,
    /// A state conflict: `already_answered`, `expired`, `cancelled`, `failed`,
    /// `not_cancellable`, `not_completable`, `not_deliverable`, `idempotency_conflict`.
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    #[error("the tenant has reached its live-challenge quota of {0}")]
    QuotaExceeded(u64),
    #[error("too many requests; try again later")]
    RateLimited { retry_after_seconds: u64 },
    /// A send refused for now: `resend_cooldown`, `recipient_limit`.
    #[error("{message}")]
    Throttled {
        code: &'static str,
        message: String,
        retry_after_seconds: u64,
    },
    #[error("the service is not ready")]
    Unavailable,
    #[error("the server is restoring its challenges; try again in a moment")]
    NotReady,
    #[error("the change could not be stored; nothing was changed")]
    StorageUnavailable,
    #[error("internal error")]
    Internal,
}

impl ApiError {
    pub fn invalid(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::Invalid {
            code,
            message: message.into(),
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            ApiError::Unauthorized => "unauthorized",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::ChallengeNotFound => "challenge_not_found",
            ApiError::PolicyNotFound => "policy_not_found",
            ApiError::AliasTaken(_) => "alias_taken",
            ApiError::PreconditionRequired => "precondition_required",
            ApiError::VersionConflict { .. } => "version_conflict",
            ApiError::RouteNotFound => "not_found",
            ApiError::MethodNotAllowed => "method_not_allowed",
            ApiError::Invalid { code, .. } => code,
            ApiError::BodyTooLarge(_) => "body_too_large",
            ApiError::UnsupportedMediaType => "unsupported_media_type",
            ApiError::TypeNotEnabled(_) => "type_not_enabled",
            ApiError::WrongAnswer { .. } => "wrong_answer",
            ApiError::AnswerRejected => "answer_rejected",
            ApiError::Conflict { code, .. } => code,
            ApiError::QuotaExceeded(_) => "quota_exceeded",
            ApiError::RateLimited { .. } => "rate_limited",
            ApiError::Throttled { code, .. } => code,
            ApiError::Unavailable => "unavailable",
            ApiError::NotReady => "not_ready",
            ApiError::StorageUnavailable => "storage_unavailable",
            ApiError::Internal => "internal",
        }
    }

    /// Maps an actor's refusal for a bearer caller, who is told precisely why.
    pub fn from_challenge(error: ChallengeError) -> Self {
        match error {
            ChallengeError::Refused(refusal) => match refusal {
                Refusal::WrongAnswer { attempts_left } => ApiError::WrongAnswer { attempts_left },
                Refusal::Unrecognized => ApiError::AnswerRejected,
                Refusal::AlreadyAnswered => {
                    conflict("already_answered", "the challenge was already answered")
                }
                Refusal::Expired => conflict("expired", "the challenge has expired"),
                Refusal::Cancelled => conflict("cancelled", "the challenge was cancelled"),
                Refusal::Failed => conflict(
                    "failed",
                    "the challenge failed after too many wrong answers",
                ),
                Refusal::NotCancellable(state) => conflict(
                    "not_cancellable",
                    format!(
                        "a challenge in state {} cannot be cancelled",
                        state.as_str()
                    ),
                ),
                Refusal::NotCompletable(state) => conflict(
                    "not_completable",
                    format!(
                        "only a verified challenge can be completed; this one is {}",
                        state.as_str()
                    ),
                ),
            },
            ChallengeError::Attempt(AttemptError::UnknownActor) => {
                ApiError::invalid("unknown_actor", "actor_id names no actor of this challenge")
            }
            ChallengeError::Attempt(AttemptError::ActorRequired) => ApiError::invalid(
                "actor_required",
                "the challenge has several actors: give actor_id or answer_token",
            ),
            ChallengeError::RateLimited => ApiError::RateLimited {
                retry_after_seconds: 60,
            },
            ChallengeError::Attempt(AttemptError::CodeRequired) => {
                ApiError::invalid("code_required", "this challenge is answered with its code")
            }
            ChallengeError::Attempt(AttemptError::CodeNotAccepted) => ApiError::invalid(
                "invalid_field",
                "code answers one-time-code challenges; this one takes answer_token or actor_id",
            ),
            ChallengeError::NotDeliverable => conflict(
                "not_deliverable",
                "this challenge type is not delivered by the server",
            ),
            ChallengeError::NotResendable(state) => conflict(
                "not_resendable",
                format!(
                    "only an issued challenge can be resent; this one is {}",
                    state.as_str()
                ),
            ),
            ChallengeError::ResendLimit(max) => conflict(
                "resend_limit",
                format!("the challenge was already resent {max} times"),
            ),
            ChallengeError::ResendCooldown {
                retry_after_seconds,
            } => ApiError::Throttled {
                code: "resend_cooldown",
                message: "the challenge was sent moments ago; wait before resending".into(),
                retry_after_seconds,
            },
            ChallengeError::RecipientLimit => ApiError::Throttled {
                code: "recipient_limit",
                message: "the recipient has been sent the most messages allowed today".into(),
                retry_after_seconds: 3600,
            },
            ChallengeError::Store(e) => {
                tracing::error!(error = %e, "storage failure");
                ApiError::StorageUnavailable
            }
        }
    }

    /// An anonymous answerer learns nothing but "rejected" (or "slow down").
    pub fn for_anonymous(self) -> Self {
        match self {
            ApiError::RateLimited { .. }
            | ApiError::Unavailable
            | ApiError::NotReady
            | ApiError::StorageUnavailable
            | ApiError::Internal
            | ApiError::BodyTooLarge(_)
            | ApiError::UnsupportedMediaType => self,
            // The request's own shape: saying what is wrong with it reveals nothing.
            ApiError::Invalid {
                code: "malformed_json" | "unknown_field" | "invalid_field",
                ..
            } => self,
            _ => ApiError::AnswerRejected,
        }
    }
}

fn conflict(code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::Conflict {
        code,
        message: message.into(),
    }
}

impl From<Lookup> for ApiError {
    fn from(lookup: Lookup) -> Self {
        match lookup {
            Lookup::NotFound => ApiError::ChallengeNotFound,
            Lookup::Unavailable => ApiError::Unavailable,
        }
    }
}

impl From<SpawnError> for ApiError {
    fn from(e: SpawnError) -> Self {
        match e {
            SpawnError::QuotaExceeded(n) => ApiError::QuotaExceeded(n),
            SpawnError::IdempotencyConflict => conflict(
                "idempotency_conflict",
                "this idempotency key was used with a different request",
            ),
            SpawnError::Store(e) => {
                tracing::error!(error = %e, "storage failure on create");
                ApiError::StorageUnavailable
            }
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        tracing::error!(error = %e, "storage failure");
        ApiError::StorageUnavailable
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
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::ChallengeNotFound | ApiError::PolicyNotFound | ApiError::RouteNotFound => {
                StatusCode::NOT_FOUND
            }
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Invalid { .. }
            | ApiError::TypeNotEnabled(_)
            | ApiError::WrongAnswer { .. }
            | ApiError::AnswerRejected => StatusCode::BAD_REQUEST,
            ApiError::BodyTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Conflict { .. } | ApiError::AliasTaken(_) => StatusCode::CONFLICT,
            ApiError::PreconditionRequired => StatusCode::PRECONDITION_REQUIRED,
            ApiError::VersionConflict { .. } => StatusCode::PRECONDITION_FAILED,
            ApiError::QuotaExceeded(_)
            | ApiError::RateLimited { .. }
            | ApiError::Throttled { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable | ApiError::NotReady | ApiError::StorageUnavailable => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status_code());
        match self {
            ApiError::Unauthorized => {
                response.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
            }
            ApiError::NotReady => {
                response.insert_header((header::RETRY_AFTER, "1"));
            }
            ApiError::RateLimited {
                retry_after_seconds,
            }
            | ApiError::Throttled {
                retry_after_seconds,
                ..
            } => {
                response.insert_header((header::RETRY_AFTER, retry_after_seconds.to_string()));
            }
            _ => {}
        }
        response.json(ErrorBody {
            error: ErrorDetail {
                code: self.code(),
                message: self.to_string(),
                attempts_left: match self {
                    ApiError::WrongAnswer { attempts_left } => Some(*attempts_left),
                    _ => None,
                },
                current_version: match self {
                    ApiError::VersionConflict { current_version } => Some(*current_version),
                    _ => None,
                },
            },
        })
    }
}
