//! The Agilicus ChallengesApi face (`/v1/challenges…`, `/v1/challenge_enrollment/…`):
//! what Agilicus' own SDK calls, answered from the one engine (spec/agilicus-challenges.md).
//! `dto.rs` has the models and the face's record, `errors.rs` the `ErrorMessage` body;
//! `challenges.rs`, `actions.rs`, `enrollment.rs` (TOTP) and `webauthn.rs` are the
//! handlers.
//!
//! Two kinds of caller:
//! - bearer calls (create, the enrollments): a JWT verified by `[auth]`, its tenant from
//!   the first of `[compat.agilicus] tenant_claims` it carries, its scopes checked by the
//!   engine as for every face;
//! - anonymous calls (`get_challenge`, `replace_challenge`, `delete_challenge`,
//!   `get_answer`): the SDK sends no token, so the challenge id — 128 random bits — is
//!   the capability. The face finds the challenge by id alone (`Engine::locate`) and acts
//!   within the tenant found, as that tenant, for that one challenge only.
//!
//! What Agilicus' model holds beyond the engine's (the spec's `challenge_types`,
//! `response_uri`, `answer_data`, an action's actors' orgs) is a face record of the
//! challenge's tenant, named by the challenge id.

pub mod actions;
pub mod challenges;
pub mod dto;
pub mod enrollment;
pub mod errors;
pub mod webauthn;

use actix_web::http::header;
use actix_web::{web, HttpRequest};

use self::dto::ChallengeRecord;
use self::errors::AgilicusError;
use crate::api::State;
use crate::auth::{Principal, Scope, Scopes};
use crate::engine::records::RecordKey;
use crate::engine::View;
use crate::model::{ChallengeId, TenantId};

/// The face's record of a challenge, named by its id.
pub const CHALLENGES: &str = "agilicus.challenge";
/// A TOTP or WebAuthn enrollment's owner, named by the factor id (the SDK may address an
/// enrollment by its id alone).
pub const ENROLLMENTS: &str = "agilicus.enrollment";

/// The caller of a bearer route, or 401. The scopes it needs, the engine checks.
pub fn authenticate(req: &HttpRequest, state: &State) -> Result<Principal, AgilicusError> {
    let token = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .ok_or_else(AgilicusError::unauthorized)?;
    let claims = &state.settings.compat.agilicus.tenant_claims;
    match state.verifier.verify_with_tenant_claims(token, claims) {
        Ok(principal) => Ok(principal),
        Err(crate::auth::jwt::AuthError::LifetimeExceeded(max)) => {
            Err(crate::api::ApiError::TokenLifetimeExceeded(max).into())
        }
        Err(reason) => {
            tracing::debug!(%reason, "agilicus bearer token refused");
            Err(AgilicusError::unauthorized())
        }
    }
}

/// The principal the face acts as within `tenant`, for one challenge (or enrollment) the
/// caller holds the capability of: exactly `scopes`.
pub fn acting_for(tenant: &TenantId, scopes: &[Scope]) -> Principal {
    let mut set = Scopes::default();
    for scope in scopes {
        set.insert(*scope);
    }
    Principal {
        tenant: tenant.clone(),
        subject: Some("agilicus".into()),
        scopes: set,
    }
}

/// Refuses a caller that lacks `scope` (403), before the face reads anything for it.
pub fn require(principal: &Principal, scope: Scope) -> Result<(), AgilicusError> {
    if principal.has(scope) {
        Ok(())
    } else {
        Err(crate::engine::Error::Forbidden(scope).into())
    }
}

/// The challenge a path names, found by its id alone; 404 for a malformed id too.
pub async fn located(state: &State, raw: &str) -> Result<View, AgilicusError> {
    let id = ChallengeId::parse(raw).ok_or_else(AgilicusError::not_found)?;
    Ok(state.engine.locate(&id).await?)
}

/// The face's record of a challenge, if it has one.
pub async fn record_of(state: &State, c: &View) -> Result<Option<ChallengeRecord>, AgilicusError> {
    let name = c.id.to_string();
    let key = RecordKey {
        namespace: CHALLENGES,
        name: &name,
    };
    let principal = acting_for(&c.tenant, &[Scope::ConfigurationGet]);
    let found = state.engine.record(&principal, key).await?;
    Ok(found.and_then(|v| serde_json::from_value(v).ok()))
}

/// Stores (or replaces) the face's record of a challenge.
pub async fn save_record(
    state: &State,
    c: &View,
    record: &ChallengeRecord,
) -> Result<(), AgilicusError> {
    let name = c.id.to_string();
    let key = RecordKey {
        namespace: CHALLENGES,
        name: &name,
    };
    let principal = acting_for(&c.tenant, &[Scope::ConfigurationPut]);
    let document = serde_json::to_value(record).expect("a record encodes");
    if state
        .engine
        .insert_record(&principal, key, document.clone())
        .await?
    {
        return Ok(());
    }
    state
        .engine
        .update_record(&principal, key, move |_| Ok(document.clone()))
        .await?;
    Ok(())
}

/// `answer_data` as the face's record of challenge `c` keeps it: sealed, base64.
pub fn seal_answer_data(
    state: &State,
    c: &View,
    data: &serde_json::Map<String, serde_json::Value>,
) -> String {
    use base64::Engine as _;
    let name = c.id.to_string();
    let key = RecordKey {
        namespace: CHALLENGES,
        name: &name,
    };
    let plain = zeroize::Zeroizing::new(serde_json::to_vec(data).expect("a JSON map encodes"));
    let sealed = state.engine.seal_record_secret(&c.tenant, key, &plain);
    base64::engine::general_purpose::STANDARD.encode(sealed)
}

/// The `answer_data` [`seal_answer_data`] sealed for challenge `c`.
pub fn open_answer_data(
    state: &State,
    c: &View,
    sealed: &str,
) -> Option<serde_json::Map<String, serde_json::Value>> {
    use base64::Engine as _;
    let name = c.id.to_string();
    let key = RecordKey {
        namespace: CHALLENGES,
        name: &name,
    };
    let sealed = base64::engine::general_purpose::STANDARD
        .decode(sealed)
        .ok()?;
    let plain = state.engine.open_record_secret(&c.tenant, key, &sealed)?;
    serde_json::from_slice(&plain).ok()
}

/// The body of a request, as JSON `T`: 400 `malformed_json` / `invalid_field` otherwise.
pub async fn body<T: serde::de::DeserializeOwned>(
    req: &HttpRequest,
    payload: web::Payload,
    state: &State,
) -> Result<T, AgilicusError> {
    let bytes = crate::api::json_body(req, payload, state.settings.server.body_limit_bytes).await?;
    Ok(crate::api::parse_json(&bytes)?)
}

/// 404 for a path this face does not serve.
async fn unknown() -> Result<actix_web::HttpResponse, AgilicusError> {
    Err(AgilicusError::not_found())
}

/// 405 for a method a path does not take.
async fn method_not_allowed() -> Result<actix_web::HttpResponse, AgilicusError> {
    Err(AgilicusError::new(
        405,
        "method_not_allowed",
        "method not allowed",
    ))
}

fn resource(path: &str) -> actix_web::Resource {
    web::resource(path).default_service(web::to(method_not_allowed))
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/v1")
            .service(resource("/challenges").route(web::post().to(challenges::create)))
            // Before `{challenge_id}`, which would take it.
            .service(
                resource("/challenges/one_time_use_actions").route(web::post().to(actions::create)),
            )
            .service(
                resource("/challenges/{challenge_id}")
                    .route(web::get().to(challenges::get))
                    .route(web::put().to(challenges::replace))
                    .route(web::delete().to(challenges::delete)),
            )
            .service(
                resource("/challenges/{challenge_id}/answers")
                    .route(web::get().to(challenges::answer)),
            )
            .service(
                resource("/challenge_enrollment/totp")
                    .route(web::post().to(enrollment::create_totp))
                    .route(web::get().to(enrollment::list_totp)),
            )
            .service(
                resource("/challenge_enrollment/totp/{totp_id}")
                    .route(web::get().to(enrollment::get_totp))
                    .route(web::post().to(enrollment::update_totp))
                    .route(web::delete().to(enrollment::delete_totp)),
            )
            .service(
                resource("/challenge_enrollment/webauthn")
                    .route(web::post().to(webauthn::create))
                    .route(web::get().to(webauthn::list)),
            )
            .service(
                resource("/challenge_enrollment/webauthn/{webauthn_id}")
                    .route(web::get().to(webauthn::get))
                    .route(web::post().to(webauthn::update))
                    .route(web::delete().to(webauthn::delete)),
            )
            .default_service(web::to(unknown)),
    );
}
