//! `/v1/challenge_enrollment/totp[/{totp_id}]`: Agilicus TOTP enrollments are the
//! engine's TOTP factors (`challenge:enrollment:get|post|delete`). The enrollment id is
//! the factor id; as the SDK may name an enrollment without its user, the face keeps
//! which user each enrollment is of (a record of the tenant, named by the factor id).
//! `pending` is an unverified factor, `success` a verified one; `status.key` (the base32
//! seed) is in the create response only.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};

use super::errors::AgilicusError;
use super::{acting_for, authenticate, body, require, ENROLLMENTS};
use crate::api::State;
use crate::auth::{Principal, Scope};
use crate::clock::rfc3339;
use crate::engine::factors::{EnrollRequest, Proof};
use crate::engine::records::RecordKey;
use crate::factors::{Factor, FactorStatus, FactorType};
use crate::model::FactorId;

/// `limit` of the lists: 1..=500, default 500.
pub const MAX_LIMIT: usize = 500;

#[derive(Debug, Deserialize)]
pub struct EnrollmentIn {
    pub spec: EnrollmentSpecIn,
}

#[derive(Debug, Deserialize)]
pub struct EnrollmentSpecIn {
    pub user_id: String,
}

#[derive(Debug, Deserialize)]
pub struct TotpAnswerIn {
    #[serde(default)]
    pub user_id: Option<String>,
    pub answer: String,
}

/// `TOTPEnrollment`, as rendered.
#[derive(Debug, Serialize)]
pub struct TotpEnrollmentOut {
    pub spec: EnrollmentSpecOut,
    pub metadata: super::dto::Metadata,
    pub status: TotpStatusOut,
}

#[derive(Debug, Serialize)]
pub struct EnrollmentSpecOut {
    pub user_id: String,
}

#[derive(Debug, Serialize)]
pub struct TotpStatusOut {
    pub state: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Owner {
    user_id: String,
}

#[derive(Debug, Deserialize)]
pub struct UserQuery {
    pub user_id: Option<String>,
}

/// The query of both enrollment lists.
#[derive(Debug, Deserialize)]
pub struct ListQuery {
    limit: Option<usize>,
    pub user_id: Option<String>,
}

impl ListQuery {
    /// `limit`, 1 to [`MAX_LIMIT`], by default the most.
    pub fn limit(&self) -> Result<usize, AgilicusError> {
        let limit = self.limit.unwrap_or(MAX_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(AgilicusError::invalid(
                "invalid_query",
                format!("limit must be between 1 and {MAX_LIMIT}"),
            ));
        }
        Ok(limit)
    }
}

pub fn query<T: serde::de::DeserializeOwned>(req: &HttpRequest) -> Result<T, AgilicusError> {
    serde_urlencoded::from_str(req.query_string())
        .map_err(|e| AgilicusError::invalid("invalid_query", e.to_string()))
}

fn render(factor: &Factor, key: Option<String>) -> TotpEnrollmentOut {
    TotpEnrollmentOut {
        spec: EnrollmentSpecOut {
            user_id: factor.user_id.to_string(),
        },
        metadata: super::dto::Metadata {
            id: factor.id.to_string(),
            created: rfc3339(factor.created_at),
            updated: rfc3339(factor.updated_at),
        },
        status: TotpStatusOut {
            state: match factor.status {
                FactorStatus::Unverified => "pending",
                FactorStatus::Verified => "success",
            },
            key,
        },
    }
}

/// The face's record of an enrollment (its owner, and what the type keeps).
pub async fn record_owner(
    state: &State,
    principal: &Principal,
    id: &FactorId,
) -> Result<Option<serde_json::Value>, AgilicusError> {
    let name = id.to_string();
    let key = RecordKey {
        namespace: ENROLLMENTS,
        name: &name,
    };
    let reader = acting_for(&principal.tenant, &[Scope::ConfigurationGet]);
    Ok(state.engine.record(&reader, key).await?)
}

/// Drops the face's record of a deleted enrollment.
pub async fn remove_owner(
    state: &State,
    principal: &Principal,
    id: &FactorId,
) -> Result<(), AgilicusError> {
    let name = id.to_string();
    let key = RecordKey {
        namespace: ENROLLMENTS,
        name: &name,
    };
    let writer = acting_for(&principal.tenant, &[Scope::ConfigurationPut]);
    state.engine.remove_record(&writer, key).await?;
    Ok(())
}

/// The user an enrollment is of: the query's `user_id`, else the one the face recorded.
async fn owner(
    state: &State,
    principal: &Principal,
    id: &FactorId,
    given: Option<String>,
) -> Result<String, AgilicusError> {
    if let Some(user) = given {
        return Ok(user);
    }
    record_owner(state, principal, id)
        .await?
        .and_then(|v| serde_json::from_value::<Owner>(v).ok())
        .map(|o| o.user_id)
        .ok_or_else(AgilicusError::not_found)
}

/// Up to `limit` enrollments of type `kind`: the user's, or without a user the tenant's
/// made through this face.
pub async fn enrollments(
    state: &State,
    principal: &Principal,
    user: Option<String>,
    kind: FactorType,
    limit: usize,
) -> Result<Vec<Factor>, AgilicusError> {
    let mut found = Vec::new();
    match user {
        Some(user) => {
            let (factors, _) = state.engine.factors(principal, user, None, 1000).await?;
            found.extend(factors.into_iter().filter(|f| f.kind() == kind));
        }
        None => {
            let reader = acting_for(&principal.tenant, &[Scope::ConfigurationGet]);
            let page = state
                .engine
                .records(&reader, ENROLLMENTS, String::new(), None, 1000)
                .await?;
            for (name, document) in page.0 {
                let (Some(id), Ok(owner)) = (
                    FactorId::parse(&name),
                    serde_json::from_value::<Owner>(document),
                ) else {
                    continue;
                };
                match state.engine.factor(principal, owner.user_id, id).await {
                    Ok(f) if f.kind() == kind => found.push(f),
                    Ok(_) | Err(crate::engine::Error::FactorNotFound) => {}
                    Err(e) => return Err(e.into()),
                }
                if found.len() >= limit {
                    break;
                }
            }
        }
    }
    found.truncate(limit);
    Ok(found)
}

/// The user's TOTP factor `raw`, or 404 (another type's factor too).
async fn totp_of(
    state: &State,
    principal: &Principal,
    raw: &str,
    given: Option<String>,
) -> Result<Factor, AgilicusError> {
    let id = FactorId::parse(raw).ok_or_else(AgilicusError::not_found)?;
    let user = owner(state, principal, &id, given).await?;
    // The route's own scope was checked; reading the factor is part of it.
    let reader = acting_for(&principal.tenant, &[Scope::EnrollmentGet]);
    let factor = state.engine.factor(&reader, user, id).await?;
    if factor.kind() != FactorType::Totp {
        return Err(AgilicusError::not_found());
    }
    Ok(factor)
}

/// `create_totp_enrollment`: 201 `TOTPEnrollment`, `pending`, with `status.key`.
pub async fn create_totp(
    req: HttpRequest,
    payload: web::Payload,
    state: State,
) -> Result<HttpResponse, AgilicusError> {
    let principal = authenticate(&req, &state)?;
    require(&principal, Scope::EnrollmentPost)?;
    let input: EnrollmentIn = body(&req, payload, &state).await?;
    let user = input.spec.user_id;
    let request = EnrollRequest {
        kind: FactorType::Totp.as_str().into(),
        friendly_name: None,
        totp: Default::default(),
        push: Default::default(),
        webauthn: Default::default(),
    };
    let enrolled = state
        .engine
        .enroll(&principal, user.clone(), request)
        .await?;
    let name = enrolled.factor.id.to_string();
    let key = RecordKey {
        namespace: ENROLLMENTS,
        name: &name,
    };
    let writer = acting_for(&principal.tenant, &[Scope::ConfigurationPut]);
    let owner = serde_json::to_value(Owner { user_id: user }).expect("a record encodes");
    state.engine.insert_record(&writer, key, owner).await?;
    let secret = enrolled.secret.map(|s| s.secret.to_string());
    Ok(HttpResponse::Created().json(render(&enrolled.factor, secret)))
}

/// `list_totp_enrollment`: the user's TOTP enrollments, or with no `user_id` the
/// tenant's made through this face, at most `limit`.
pub async fn list_totp(req: HttpRequest, state: State) -> Result<HttpResponse, AgilicusError> {
    let principal = authenticate(&req, &state)?;
    require(&principal, Scope::EnrollmentGet)?;
    let q: ListQuery = query(&req)?;
    let limit = q.limit()?;
    let found = enrollments(&state, &principal, q.user_id, FactorType::Totp, limit).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "limit": limit,
        "totp": found.iter().map(|f| render(f, None)).collect::<Vec<_>>(),
    })))
}

/// `get_totp_enrollment`: 200 `TOTPEnrollment` (never its key).
pub async fn get_totp(
    req: HttpRequest,
    path: web::Path<String>,
    state: State,
) -> Result<HttpResponse, AgilicusError> {
    let principal = authenticate(&req, &state)?;
    require(&principal, Scope::EnrollmentGet)?;
    let q: UserQuery = query(&req)?;
    let factor = totp_of(&state, &principal, &path, q.user_id).await?;
    Ok(HttpResponse::Ok().json(render(&factor, None)))
}

/// `update_totp_enrollment` (a POST): the current code verifies it (`success`); a wrong
/// one is 400 and it stays `pending`.
pub async fn update_totp(
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
    state: State,
) -> Result<HttpResponse, AgilicusError> {
    let principal = authenticate(&req, &state)?;
    require(&principal, Scope::EnrollmentPost)?;
    let q: UserQuery = query(&req)?;
    let input: TotpAnswerIn = body(&req, payload, &state).await?;
    let factor = totp_of(&state, &principal, &path, q.user_id.or(input.user_id)).await?;
    let verified = state
        .engine
        .verify_factor(
            &principal,
            factor.user_id.to_string(),
            factor.id,
            Proof::Code(input.answer),
        )
        .await
        .map_err(|e| match e {
            crate::engine::Error::Conflict { .. } => AgilicusError::answer_rejected(),
            other => AgilicusError::from(other),
        })?;
    Ok(HttpResponse::Ok().json(render(&verified, None)))
}

/// `delete_totp_enrollment`: 204; the factor answers no challenge from then on.
pub async fn delete_totp(
    req: HttpRequest,
    path: web::Path<String>,
    state: State,
) -> Result<HttpResponse, AgilicusError> {
    let principal = authenticate(&req, &state)?;
    require(&principal, Scope::EnrollmentDelete)?;
    let q: UserQuery = query(&req)?;
    let factor = totp_of(&state, &principal, &path, q.user_id).await?;
    state
        .engine
        .delete_factor(&principal, factor.user_id.to_string(), factor.id)
        .await?;
    remove_owner(&state, &principal, &factor.id).await?;
    Ok(HttpResponse::NoContent().finish())
}
