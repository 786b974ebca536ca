//! The Apiture auth-challenges face (`/auth/…`): an Apiture challenge is one engine
//! challenge that offers several methods, and its authenticators are those methods
//! (README.md "Apiture"). `errors.rs` renders the `_error` body, `dto.rs` the HAL
//! shapes, `challenges.rs` holds the handlers.
//!
//! - A caller presents an `API-Key` (`[[compat.apiture.api_keys]]`, compared as SHA-256
//!   digests in constant time) and a bearer access token of the key's tenant; the
//!   token's scopes are the native ones.
//! - "One active challenge per user": the user's current challenge is an engine record
//!   (`apiture.user/<userId>` → its id), replaced by compare-and-swap at each create.
//!   Whoever replaces an id cancels that challenge before answering, so under any number
//!   of concurrent creates exactly one survives; a challenge that is not its user's
//!   current one answers 404 here, as Apiture's deleted challenges do.

pub mod challenges;
pub mod dto;
pub mod errors;

use std::sync::{Arc, Mutex};

use actix_web::{web, HttpRequest};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use self::errors::ApitureError;
use crate::api::State;
use crate::auth::{Principal, Scope, Scopes};
use crate::engine::records::RecordKey;
use crate::engine::View;
use crate::model::{ChallengeId, State as ChallengeState, TenantId};

/// The records naming each user's current challenge.
pub const USERS: &str = "apiture.user";

/// The request's header `API-Key`.
pub const API_KEY: &str = "api-key";

/// The caller: the bearer token's principal, once its tenant is the API key's. Missing
/// key → 401 `missingApiKey`; unknown key → 401 `invalidApiKey`; missing or invalid
/// token, or a token of another tenant → 401 `unauthorized`.
pub fn authenticate(req: &HttpRequest, state: &State) -> Result<Principal, ApitureError> {
    let given = req
        .headers()
        .get(API_KEY)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty())
        .ok_or_else(|| {
            ApitureError::new(
                401,
                errors::MISSING_API_KEY,
                "the API-Key header is required",
            )
        })?;
    let given: [u8; 32] = Sha256::digest(given.as_bytes()).into();
    // Every configured key is compared, so the time taken does not say which matched.
    let mut tenant = None;
    for key in &state.settings.compat.apiture.api_keys {
        let expected: [u8; 32] = if key.key.is_empty() {
            let mut out = [0u8; 32];
            if hex::decode_to_slice(&key.key_sha256, &mut out).is_err() {
                continue;
            }
            out
        } else {
            Sha256::digest(key.key.expose().as_bytes()).into()
        };
        if bool::from(given.ct_eq(&expected)) && tenant.is_none() {
            tenant = TenantId::parse(&key.tenant);
        }
    }
    let tenant = tenant.ok_or_else(|| {
        ApitureError::new(401, errors::INVALID_API_KEY, "the API key is not valid")
    })?;
    let principal = crate::api::authenticate(req, state)?;
    if principal.tenant != tenant {
        tracing::debug!("apiture: bearer token of another tenant than the API key's");
        return Err(ApitureError::new(
            401,
            errors::UNAUTHORIZED,
            "the access token is not for the API key's tenant",
        ));
    }
    Ok(principal)
}

/// The caller holds `scope`, or 403 `forbidden` — checked before anything is looked
/// up, so a refused caller learns nothing of the ids it names.
pub fn require(principal: &Principal, scope: Scope) -> Result<(), ApitureError> {
    if principal.has(scope) {
        Ok(())
    } else {
        Err(crate::engine::Error::Forbidden(scope).into())
    }
}

/// The face's own bookkeeping as the caller's tenant: reading its challenges, the
/// per-user records, and cancelling a replaced challenge. Used only after the caller's
/// own scope for the operation was checked.
fn bookkeeper(principal: &Principal) -> Principal {
    let mut scopes = Scopes::default();
    for scope in [
        Scope::Get,
        Scope::Delete,
        Scope::ConfigurationGet,
        Scope::ConfigurationPut,
    ] {
        scopes.insert(scope);
    }
    Principal {
        tenant: principal.tenant.clone(),
        subject: principal.subject.clone(),
        scopes,
    }
}

/// The caller's principal with `scope` added: the engine operation a face route
/// stands for (starting an authenticator is part of answering on this face).
fn with_scope(principal: &Principal, scope: Scope) -> Principal {
    let mut p = principal.clone();
    p.scopes.insert(scope);
    p
}

/// The id of the user's current challenge, if any.
pub async fn current(
    state: &State,
    principal: &Principal,
    user_id: &str,
) -> Result<Option<ChallengeId>, ApitureError> {
    let key = RecordKey {
        namespace: USERS,
        name: user_id,
    };
    let record = state.engine.record(&bookkeeper(principal), key).await?;
    Ok(record.and_then(|r| r["challengeId"].as_str().and_then(ChallengeId::parse)))
}

/// Makes `id` the user's current challenge; the one it replaces, if any.
pub async fn make_current(
    state: &State,
    principal: &Principal,
    user_id: &str,
    id: ChallengeId,
) -> Result<Option<ChallengeId>, ApitureError> {
    let keeper = bookkeeper(principal);
    let key = RecordKey {
        namespace: USERS,
        name: user_id,
    };
    let document = serde_json::json!({"challengeId": id.to_string()});
    loop {
        // The change may run more than once (compare and swap): the last run is the one
        // that was written, and it saw the id replaced.
        let replaced = Arc::new(Mutex::new(None));
        let seen = replaced.clone();
        let next = document.clone();
        let updated = state
            .engine
            .update_record(&keeper, key, move |old| {
                *seen.lock().expect("not poisoned") =
                    old["challengeId"].as_str().and_then(ChallengeId::parse);
                Ok(next.clone())
            })
            .await?;
        if updated.is_some() {
            return Ok(replaced.lock().expect("not poisoned").take());
        }
        if state
            .engine
            .insert_record(&keeper, key, document.clone())
            .await?
        {
            return Ok(None);
        }
        // Inserted meanwhile by another create: replace that one.
    }
}

/// Cancels a challenge this face replaced (one that ended meanwhile refuses; either
/// way it is no longer live).
pub async fn retire(state: &State, principal: &Principal, id: ChallengeId) {
    if let Err(e) = state.engine.cancel(&bookkeeper(principal), &id).await {
        tracing::debug!(challenge = %id, error = %e, "apiture: replaced challenge not cancelled");
    }
}

/// One of this face's challenges: it offers methods, it was not cancelled, and it is
/// its user's current one; else 404 `challengeNotFound` (absent, another tenant's, a
/// native challenge, or replaced by a newer one).
pub async fn load(
    state: &State,
    principal: &Principal,
    raw_id: &str,
) -> Result<View, ApitureError> {
    let id = ChallengeId::parse(raw_id).ok_or_else(ApitureError::challenge_not_found)?;
    let view = state.engine.get(&bookkeeper(principal), &id).await?;
    if view.methods().is_empty() || view.life.state == ChallengeState::Cancelled {
        return Err(ApitureError::challenge_not_found());
    }
    if current(state, principal, &view.user_id).await? != Some(id) {
        return Err(ApitureError::challenge_not_found());
    }
    Ok(view)
}

/// Reads a challenge again (after a refusal that returns no view).
pub async fn reload(
    state: &State,
    principal: &Principal,
    id: &ChallengeId,
) -> Result<View, ApitureError> {
    Ok(state.engine.get(&bookkeeper(principal), id).await?)
}

/// 404 `notFound` for a path this face does not serve.
async fn unknown() -> Result<actix_web::HttpResponse, ApitureError> {
    Err(ApitureError::new(404, "notFound", "no such resource"))
}

/// 405 `methodNotAllowed` for a method a path does not take.
async fn method_not_allowed() -> Result<actix_web::HttpResponse, ApitureError> {
    Err(ApitureError::new(
        405,
        "methodNotAllowed",
        "this resource does not take that method",
    ))
}

fn resource(path: &str) -> actix_web::Resource {
    web::resource(path).default_service(web::to(method_not_allowed))
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    let authenticator = "/challenges/{challengeId}/authenticators/{authenticatorId}";
    cfg.service(
        web::scope("/auth")
            .service(resource("/authenticatorTypes").route(web::get().to(challenges::types)))
            .service(
                resource("/challenges")
                    .route(web::post().to(challenges::create))
                    .route(web::get().to(challenges::list)),
            )
            .service(resource("/challengeRequired").route(web::post().to(challenges::step_up)))
            .service(resource("/challenges/{challengeId}").route(web::get().to(challenges::get)))
            .service(resource(authenticator).route(web::get().to(challenges::authenticator)))
            .service(
                resource(&format!("{authenticator}/starts"))
                    .route(web::post().to(challenges::start)),
            )
            .service(
                resource(&format!("{authenticator}/verifications"))
                    .route(web::post().to(challenges::verify)),
            )
            .service(
                resource("/challenges/{challengeId}/redemptions")
                    .route(web::post().to(challenges::redeem)),
            )
            .default_service(web::to(unknown)),
    );
}
