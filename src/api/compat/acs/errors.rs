//! The ACS face's errors: the native ones — the same stable codes, the same statuses
//! (`api/error.rs`), the same `{"error": {"code", "message"}}` envelope and headers —
//! with ACS names in the message (`userId`, `EMAIL_OTP`) and in the extra fields
//! (`remainingAttempts` on `wrong_answer`, `currentVersion` on `version_conflict`).
//!
//! One status differs, as the spec's optimistic locking says: a stale `version` sent in
//! a PUT body (rather than `If-Match`) is `409 version_conflict`, not `412`.

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

use crate::api::ApiError;
use crate::engine::Error;

#[derive(Debug)]
pub struct AcsError {
    error: ApiError,
    /// The status when it differs from the native one.
    status: Option<StatusCode>,
    /// The message speaks ACS names already (it is about an ACS body or query, whose
    /// unknown fields it may quote as given): not renamed.
    as_given: bool,
}

impl AcsError {
    /// An error about the ACS request itself, its message left as it is.
    pub fn as_given(error: ApiError) -> Self {
        AcsError {
            error,
            status: None,
            as_given: true,
        }
    }

    /// A stale precondition that came from a body's `version`: 409.
    pub fn from_body_version(error: ApiError) -> Self {
        let status = matches!(error, ApiError::Domain(Error::VersionConflict { .. }))
            .then_some(StatusCode::CONFLICT);
        AcsError {
            error,
            status,
            as_given: false,
        }
    }
}

impl From<ApiError> for AcsError {
    fn from(error: ApiError) -> Self {
        AcsError {
            error,
            status: None,
            as_given: false,
        }
    }
}

impl From<Error> for AcsError {
    fn from(error: Error) -> Self {
        ApiError::Domain(error).into()
    }
}

impl std::fmt::Display for AcsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let message = self.error.to_string();
        if self.as_given {
            f.write_str(&message)
        } else {
            f.write_str(&acs_names(&message))
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct AcsErrorBody {
    error: AcsErrorDetail,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct AcsErrorDetail {
    code: &'static str,
    message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    remaining_attempts: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    current_version: Option<u64>,
}

impl ResponseError for AcsError {
    fn status_code(&self) -> StatusCode {
        self.status.unwrap_or_else(|| self.error.status_code())
    }

    fn error_response(&self) -> HttpResponse {
        // The native response's headers (WWW-Authenticate, Retry-After, Allow), this body.
        let native = self.error.error_response();
        let mut response = HttpResponse::build(self.status_code());
        for (name, value) in native.headers() {
            if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
                response.append_header((name.clone(), value.clone()));
            }
        }
        let domain = match &self.error {
            ApiError::Domain(e) => Some(e),
            _ => None,
        };
        response.json(AcsErrorBody {
            error: AcsErrorDetail {
                code: self.error.code(),
                message: self.to_string(),
                remaining_attempts: match domain {
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

/// The native field names that messages use and ACS spells otherwise; the ACS name is
/// the camelCase of each, but where [`RENAMED`] says another.
const FIELDS: &[&str] = &[
    "user_id",
    "ttl_seconds",
    "max_attempts",
    "hidden_details",
    "callback_url",
    "idempotency_key",
    "answer_token",
    "actor_id",
    "answer_url",
    "page_size",
    "page_token",
    "max_ttl_seconds",
    "code_length",
    "code_alphabet",
    "resend_cooldown_seconds",
    "max_resends",
    "resend_mode",
    "retention_seconds",
    "one_active_per_user",
    "default_locale",
    "email_domains",
    "phone_prefixes",
    "allowed_action_scopes",
    "default_ttl_seconds",
    "default_max_attempts",
    "default_code_length",
    "max_live_challenges",
    "long_poll_max_seconds",
    "anonymous_failures_per_challenge_per_minute",
    "created_at",
    "updated_at",
    "expires_at",
    "answered_at",
    "answered_by",
    "current_version",
];

const RENAMED: &[(&str, &str)] = &[
    ("attempts_left", "remainingAttempts"),
    ("resends_left", "remainingResends"),
];

fn camel(snake: &str) -> String {
    let mut out = String::with_capacity(snake.len());
    for (i, part) in snake.split('_').enumerate() {
        let mut chars = part.chars();
        match chars.next() {
            Some(first) if i > 0 => {
                out.push(first.to_ascii_uppercase());
                out.extend(chars);
            }
            _ => out.push_str(part),
        }
    }
    out
}

/// The ACS spelling of one word of a message, if it has one: a native field name, a
/// type name (`token`, a word of prose too, excepted), or a state named as one (after
/// `state` or `is`: "in state cancelled", "this one is issued").
fn acs_word(word: &str, previous: &str) -> Option<String> {
    if matches!(previous, "state" | "is") {
        if let Some(state) = crate::model::State::parse(word) {
            return Some(super::dto::status_name(state).to_string());
        }
    }
    if let Some((_, acs)) = RENAMED.iter().find(|(native, _)| *native == word) {
        return Some(acs.to_string());
    }
    if FIELDS.contains(&word) {
        return Some(camel(word));
    }
    match crate::model::ChallengeType::parse(word) {
        Some(kind) if word != "token" => Some(super::dto::type_name(kind).to_string()),
        _ => None,
    }
}

/// A native message with ACS names: each word (a run of letters, digits and `_`) that
/// is a native field or type name is replaced by its ACS name.
pub fn acs_names(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut word = String::new();
    let mut previous = String::new();
    let flush = |word: &mut String, previous: &mut String, out: &mut String| {
        if word.is_empty() {
            return;
        }
        match acs_word(word, previous) {
            Some(acs) => out.push_str(&acs),
            None => out.push_str(word),
        }
        std::mem::swap(word, previous);
        word.clear();
    };
    for c in message.chars() {
        if c.is_ascii_alphanumeric() || c == '_' {
            word.push(c);
        } else {
            flush(&mut word, &mut previous, &mut out);
            out.push(c);
        }
    }
    flush(&mut word, &mut previous, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_speak_acs_names() {
        assert_eq!(
            acs_names("actors[1].user_id must not be empty"),
            "actors[1].userId must not be empty"
        );
        assert_eq!(
            acs_names("type is email_otp but policy login is for sms_otp challenges"),
            "type is EMAIL_OTP but policy login is for SMS_OTP challenges"
        );
        assert_eq!(
            acs_names("templates.default_locale names no locale of templates.locales"),
            "templates.defaultLocale names no locale of templates.locales"
        );
        assert_eq!(
            acs_names("anonymous_failures_per_challenge_per_minute must be between 0 and 1000"),
            "anonymousFailuresPerChallengePerMinute must be between 0 and 1000"
        );
        assert_eq!(
            acs_names("totp challenges are not created through this API"),
            "TOTP challenges are not created through this API"
        );
        assert_eq!(
            acs_names("a challenge in state cancelled cannot be cancelled"),
            "a challenge in state CANCELLED cannot be cancelled"
        );
        assert_eq!(
            acs_names("only a verified challenge can be completed; this one is issued"),
            "only a verified challenge can be completed; this one is ISSUED"
        );
        let prose = "the token lacks the scope challenge:post; a policy named user_ids exists";
        assert_eq!(acs_names(prose), prose);
    }

    #[test]
    fn a_stale_body_version_is_a_409_and_other_errors_keep_their_status() {
        let stale = ApiError::Domain(Error::VersionConflict { current_version: 4 });
        assert_eq!(
            AcsError::from_body_version(stale.clone()).status_code(),
            StatusCode::CONFLICT
        );
        assert_eq!(
            AcsError::from(stale).status_code(),
            StatusCode::PRECONDITION_FAILED
        );
        let not_found = ApiError::Domain(Error::PolicyNotFound);
        assert_eq!(
            AcsError::from_body_version(not_found).status_code(),
            StatusCode::NOT_FOUND
        );
    }
}
