//! The engine's one error family: every way an operation can fail, as the domain sees
//! it. No status codes and no bodies here: `api/error.rs` picks the HTTP status once,
//! and each face renders its own body. Every variant has a stable snake_case
//! [`code`](Error::code) a client may rely on.

use crate::auth::Scope;
use crate::challenge::kinds::token::AttemptError;
use crate::challenge::messages::{ChallengeError, MethodError};
use crate::challenge::state::Refusal;
use crate::factors::FactorType;
use crate::model::ChallengeType;
use crate::store::{StoreError, WriteError};
use crate::tenant::supervisor::SpawnError;
use crate::tenant::Lookup;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The principal lacks the scope the operation needs.
    #[error("the token lacks the scope {}", .0.name())]
    Forbidden(Scope),
    /// No such challenge for this caller (absent, deleted, or another tenant's).
    #[error("no such challenge")]
    ChallengeNotFound,
    /// No such policy in the caller's tenant.
    #[error("no such policy")]
    PolicyNotFound,
    /// No such method in the challenge (its id names none of the challenge's methods).
    #[error("no such method")]
    MethodNotFound,
    /// No such factor for this caller (absent, deleted, another user's or tenant's).
    #[error("no such factor")]
    FactorNotFound,
    #[error("factor type {} is not enabled on this server", .0.as_str())]
    FactorTypeNotEnabled(FactorType),
    #[error("a policy named {0} exists already")]
    AliasTaken(String),
    /// A versioned write expected a version that is no longer current.
    #[error("the version sent is stale; the current version is {current_version}")]
    VersionConflict { current_version: u64 },
    /// Input that failed validation; `code` is stable, `message` names the field.
    #[error("{message}")]
    Invalid { code: &'static str, message: String },
    #[error("challenge type {} is not enabled on this server", .0.as_str())]
    TypeNotEnabled(ChallengeType),
    /// A wrong answer that cost an attempt.
    #[error("wrong answer")]
    WrongAnswer { attempts_left: u32 },
    /// A wrong code for a factor's enrollment (no attempts are counted there).
    #[error("wrong answer")]
    WrongCode,
    /// An answer refused without saying why (what anonymous callers are told).
    #[error("the answer was not accepted")]
    AnswerRejected,
    /// Refused by the challenge's state or history: `already_answered`, `expired`,
    /// `cancelled`, `failed`, `not_cancellable`, `not_completable`, `not_deliverable`,
    /// `not_resendable`, `resend_limit`, `idempotency_conflict`, `factor_not_verified`,
    /// `factor_already_verified`.
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    /// The tenant's live-challenge quota is used up.
    #[error("the tenant has reached its live-challenge quota of {0}")]
    QuotaExceeded(u64),
    /// The tenant keeps the most challenges allowed, live or ended within retention.
    #[error("the tenant keeps {0} challenges (live, or ended and within their retention), the most allowed")]
    StoredQuotaExceeded(u64),
    #[error("too many requests; try again later")]
    RateLimited { retry_after_seconds: u64 },
    /// A send refused for now: `resend_cooldown`, `recipient_limit`.
    #[error("{message}")]
    Throttled {
        code: &'static str,
        message: String,
        retry_after_seconds: u64,
    },
    /// The service has not finished starting (the restore is running).
    #[error("the service is not ready; try again in a moment")]
    NotReady,
    /// The store failed a read or a write; nothing was acknowledged.
    #[error("storage is unavailable; the request was not carried out")]
    StorageUnavailable,
    /// A challenge's actor could not take the message.
    #[error("the service is not ready")]
    Unavailable,
    /// A device token refused (`factors::push::TokenRefusal` says which code).
    #[error("{message}")]
    DeviceUnauthorized {
        code: &'static str,
        message: &'static str,
    },
    #[error("internal error")]
    Internal,
}

impl Error {
    pub fn invalid(code: &'static str, message: impl Into<String>) -> Self {
        Error::Invalid {
            code,
            message: message.into(),
        }
    }

    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Error::Conflict {
            code,
            message: message.into(),
        }
    }

    /// The stable snake_case code.
    pub fn code(&self) -> &'static str {
        match self {
            Error::Forbidden(_) => "forbidden",
            Error::ChallengeNotFound => "challenge_not_found",
            Error::PolicyNotFound => "policy_not_found",
            Error::FactorNotFound => "factor_not_found",
            Error::MethodNotFound => "method_not_found",
            Error::FactorTypeNotEnabled(_) => "type_not_enabled",
            Error::AliasTaken(_) => "alias_taken",
            Error::VersionConflict { .. } => "version_conflict",
            Error::Invalid { code, .. } => code,
            Error::TypeNotEnabled(_) => "type_not_enabled",
            Error::WrongAnswer { .. } | Error::WrongCode => "wrong_answer",
            Error::AnswerRejected => "answer_rejected",
            Error::Conflict { code, .. } => code,
            Error::QuotaExceeded(_) | Error::StoredQuotaExceeded(_) => "quota_exceeded",
            Error::RateLimited { .. } => "rate_limited",
            Error::Throttled { code, .. } => code,
            Error::NotReady => "not_ready",
            Error::StorageUnavailable => "storage_unavailable",
            Error::Unavailable => "unavailable",
            Error::DeviceUnauthorized { code, .. } => code,
            Error::Internal => "internal",
        }
    }

    /// What an anonymous answerer may learn: nothing but "rejected", unless the
    /// refusal is about the request's own shape, throttling, or the service's health
    /// (none of which says anything about the challenge).
    pub fn for_anonymous(self) -> Self {
        match self {
            Error::RateLimited { .. }
            | Error::Unavailable
            | Error::NotReady
            | Error::StorageUnavailable
            | Error::Internal => self,
            Error::Invalid {
                code: "malformed_json" | "unknown_field" | "invalid_field" | "invalid_credential",
                ..
            } => self,
            _ => Error::AnswerRejected,
        }
    }
}

/// A store failure: logged with its detail here, reported without it.
pub(crate) fn storage(e: impl std::fmt::Display) -> Error {
    tracing::error!(error = %e, "storage failure");
    Error::StorageUnavailable
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        storage(e)
    }
}

impl From<Lookup> for Error {
    fn from(lookup: Lookup) -> Self {
        match lookup {
            Lookup::NotFound => Error::ChallengeNotFound,
            Lookup::Unavailable => Error::Unavailable,
        }
    }
}

impl From<SpawnError> for Error {
    fn from(e: SpawnError) -> Self {
        match e {
            SpawnError::QuotaExceeded(n) => Error::QuotaExceeded(n),
            SpawnError::StoredQuotaExceeded(n) => Error::StoredQuotaExceeded(n),
            SpawnError::IdempotencyConflict => Error::conflict(
                "idempotency_conflict",
                "this idempotency key was used with a different request",
            ),
            SpawnError::Store(e) => storage(e),
        }
    }
}

/// A versioned write's failure; `not_found` is the error for an absent entry.
pub(crate) fn write_error(
    e: WriteError,
    exists: impl FnOnce() -> Error,
    not_found: Error,
) -> Error {
    match e {
        WriteError::Exists => exists(),
        WriteError::NotFound => not_found,
        WriteError::Stale { current } => Error::VersionConflict {
            current_version: current,
        },
        WriteError::Store(e) => e.into(),
    }
}

impl From<ChallengeError> for Error {
    /// An actor's refusal, precisely (anonymous callers see it through
    /// [`Error::for_anonymous`]).
    fn from(error: ChallengeError) -> Self {
        match error {
            ChallengeError::Refused(refusal) => match refusal {
                Refusal::WrongAnswer { attempts_left } => Error::WrongAnswer { attempts_left },
                Refusal::Unrecognized => Error::AnswerRejected,
                Refusal::AlreadyAnswered => {
                    Error::conflict("already_answered", "the challenge was already answered")
                }
                Refusal::Expired => Error::conflict("expired", "the challenge has expired"),
                Refusal::Cancelled => Error::conflict("cancelled", "the challenge was cancelled"),
                Refusal::Failed => Error::conflict(
                    "failed",
                    "the challenge failed after too many wrong answers",
                ),
                Refusal::NotCancellable(state) => Error::conflict(
                    "not_cancellable",
                    format!(
                        "a challenge in state {} cannot be cancelled",
                        state.as_str()
                    ),
                ),
                Refusal::NotIssued => {
                    Error::conflict("not_issued", "the challenge has not been issued yet")
                }
                Refusal::NotPending(state) => Error::conflict(
                    "not_pending",
                    format!(
                        "only a pending challenge can be issued; this one is {}",
                        state.as_str()
                    ),
                ),
                Refusal::NotRetimable(state) => Error::conflict(
                    "not_retimable",
                    format!(
                        "only a pending or issued challenge can be given a new expiry; this one is {}",
                        state.as_str()
                    ),
                ),
                Refusal::NotCompletable(state) => Error::conflict(
                    "not_completable",
                    format!(
                        "only a verified challenge can be completed; this one is {}",
                        state.as_str()
                    ),
                ),
            },
            ChallengeError::Attempt(AttemptError::UnknownActor) => {
                Error::invalid("unknown_actor", "actor_id names no actor of this challenge")
            }
            ChallengeError::Attempt(AttemptError::ActorRequired) => Error::invalid(
                "actor_required",
                "the challenge has several actors: give actor_id or answer_token",
            ),
            ChallengeError::Attempt(AttemptError::CodeRequired) => {
                Error::invalid("code_required", "this challenge is answered with its code")
            }
            ChallengeError::Attempt(AttemptError::CodeNotAccepted) => Error::invalid(
                "invalid_field",
                "code answers one-time-code challenges; this one takes answer_token or actor_id",
            ),
            ChallengeError::Attempt(AttemptError::DeviceRequired) => Error::invalid(
                "device_answer_required",
                "a push challenge is answered by its device, at /api/v1/devices/challenges/{id}/answer",
            ),
            ChallengeError::Attempt(AttemptError::BadSignature) => Error::invalid(
                "invalid_signature",
                "signature is not the device key's signature of signing_payload.decision",
            ),
            ChallengeError::Attempt(AttemptError::CredentialRequired) => Error::invalid(
                "credential_required",
                "a webauthn challenge is answered with credential, the assertion of navigator.credentials.get",
            ),
            ChallengeError::Attempt(AttemptError::CredentialNotAccepted) => Error::invalid(
                "invalid_field",
                "credential answers webauthn challenges only",
            ),
            ChallengeError::RateLimited => Error::RateLimited {
                retry_after_seconds: 60,
            },
            ChallengeError::NotDeliverable => Error::conflict(
                "not_deliverable",
                "this challenge type is not delivered by the server",
            ),
            ChallengeError::NotResendable(state) => Error::conflict(
                "not_resendable",
                format!(
                    "only an issued challenge can be resent; this one is {}",
                    state.as_str()
                ),
            ),
            ChallengeError::ResendLimit(max) => Error::conflict(
                "resend_limit",
                format!("the challenge was already resent {max} times"),
            ),
            ChallengeError::ResendCooldown {
                retry_after_seconds,
            } => Error::Throttled {
                code: "resend_cooldown",
                message: "the challenge was sent moments ago; wait before resending".into(),
                retry_after_seconds,
            },
            ChallengeError::RecipientLimit => Error::Throttled {
                code: "recipient_limit",
                message: "the recipient has been sent the most messages allowed today".into(),
                retry_after_seconds: 3600,
            },
            ChallengeError::Method(e) => match e {
                MethodError::Unknown => Error::MethodNotFound,
                MethodError::Required => Error::invalid(
                    "method_required",
                    "the challenge offers several methods: give method_id",
                ),
                MethodError::NotStarted => Error::conflict(
                    "method_not_started",
                    "the method has not been started: start it to send its code",
                ),
                MethodError::Failed => Error::conflict(
                    "method_failed",
                    "the method failed after too many wrong answers",
                ),
                MethodError::NotStartable(state) => Error::conflict(
                    "not_startable",
                    format!(
                        "only a method of an issued challenge can be started; this one is {}",
                        state.as_str()
                    ),
                ),
            },
            ChallengeError::Store(e) => storage(e),
        }
    }
}
