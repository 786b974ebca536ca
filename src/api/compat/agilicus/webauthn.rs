//! `/v1/challenge_enrollment/webauthn[/{webauthn_id}]`: Agilicus WebAuthn enrollments
//! are the engine's WebAuthn factors (`challenge:enrollment:get|post|delete`), on one of
//! the tenant's configured relying parties (`relying_party_id`, else 400
//! `unknown_relying_party`). `status.challenge` is the registration's challenge (from its
//! creation options); `update_webauthn_enrollment` assembles the browser's
//! `PublicKeyCredential` from `credential_id`, `client_data` (clientDataJSON, plain or
//! base64) and `authenticator_data` (the attestation object) and finishes the
//! registration with it.
//!
//! `user_verification`: the relying party's own rule decides (this server registers
//! passkeys, which require user verification), whatever the enrollment asks; the value
//! asked for is kept and shown as given (Agilicus' default `discouraged` included).

use actix_web::{web, HttpRequest, HttpResponse};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use serde::{Deserialize, Serialize};

use super::enrollment::{query, record_owner, remove_owner, ListQuery, UserQuery};
use super::errors::AgilicusError;
use super::{acting_for, authenticate, body, require, ENROLLMENTS};
use crate::api::State;
use crate::auth::{Principal, Scope};
use crate::clock::rfc3339;
use crate::engine::factors::{EnrollRequest, Proof, WebauthnOptions};
use crate::factors::{Factor, FactorData, FactorStatus, FactorType};
use crate::model::FactorId;

const CONVEYANCES: [&str; 3] = ["direct", "indirect", "none"];
const VERIFICATIONS: [&str; 3] = ["required", "preferred", "discouraged"];
const TRANSPORTS: [&str; 6] = ["internal", "ble", "nfc", "usb", "cable", "hybrid"];

/// `WebAuthNEnrollmentSpec`, in and out (and kept in the face's record).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct WebauthnSpec {
    pub user_id: String,
    pub relying_party_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attestation_format: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attestation_conveyance: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_verification: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_endpoint: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct WebauthnIn {
    pub spec: WebauthnSpec,
}

/// `WebAuthNEnrollmentAnswer`.
#[derive(Debug, Deserialize)]
pub struct WebauthnAnswerIn {
    #[serde(default)]
    pub user_id: Option<String>,
    pub credential_id: String,
    pub client_data: String,
    #[serde(default)]
    pub authenticator_data: Option<String>,
    #[serde(default)]
    pub transports: Option<Vec<String>>,
}

/// What the face keeps of a WebAuthn enrollment: its owner, the spec as given, and the
/// transports the answer named.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WebauthnRecord {
    pub user_id: String,
    pub spec: WebauthnSpec,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub transports: Vec<String>,
}

#[derive(Debug, Serialize)]
struct StatusOut {
    #[serde(skip_serializing_if = "Option::is_none")]
    challenge: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    credential_id: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    transports: Vec<String>,
}

#[derive(Debug, Serialize)]
struct EnrollmentOut {
    spec: WebauthnSpec,
    metadata: super::dto::Metadata,
    status: StatusOut,
}

fn one_of(field: &str, value: Option<&str>, allowed: &[&str]) -> Result<(), AgilicusError> {
    match value {
        Some(v) if !allowed.contains(&v) => Err(AgilicusError::invalid(
            "invalid_field",
            format!("{field} must be one of {}", allowed.join(", ")),
        )),
        _ => Ok(()),
    }
}

/// The registration challenge of an open ceremony's creation options.
fn challenge_of(options: &serde_json::Value) -> Option<String> {
    options["publicKey"]["challenge"]
        .as_str()
        .map(str::to_string)
}

fn render(factor: &Factor, record: Option<&WebauthnRecord>) -> EnrollmentOut {
    let FactorData::Webauthn(data) = &factor.data else {
        unreachable!("only webauthn factors are rendered here");
    };
    let spec = record
        .map(|r| r.spec.clone())
        .unwrap_or_else(|| WebauthnSpec {
            user_id: factor.user_id.to_string(),
            relying_party_id: data.relying_party.to_string(),
            ..WebauthnSpec::default()
        });
    let challenge = data
        .registration
        .as_ref()
        .filter(|_| factor.status == FactorStatus::Unverified)
        .and_then(|r| serde_json::from_str(&r.options).ok())
        .and_then(|o: serde_json::Value| challenge_of(&o));
    EnrollmentOut {
        spec,
        metadata: super::dto::Metadata {
            id: factor.id.to_string(),
            created: rfc3339(factor.created_at),
            updated: rfc3339(factor.updated_at),
        },
        status: StatusOut {
            challenge,
            credential_id: data
                .credential
                .as_ref()
                .map(|c| URL_SAFE_NO_PAD.encode(&c.id)),
            transports: record.map(|r| r.transports.clone()).unwrap_or_default(),
        },
    }
}

/// Base64 in either alphabet, padded or not, as base64url without padding.
fn base64url(field: &str, raw: &str) -> Result<String, AgilicusError> {
    let trimmed = raw.trim().trim_end_matches('=');
    let bytes = URL_SAFE_NO_PAD
        .decode(trimmed)
        .or_else(|_| STANDARD.decode(raw.trim()))
        .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(trimmed))
        .map_err(|_| AgilicusError::invalid("invalid_field", format!("{field} is not base64")))?;
    if bytes.is_empty() {
        return Err(AgilicusError::invalid(
            "invalid_field",
            format!("{field} must not be empty"),
        ));
    }
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

/// The browser's `PublicKeyCredential` of a registration, from Agilicus' answer fields.
pub fn credential(answer: &WebauthnAnswerIn) -> Result<serde_json::Value, AgilicusError> {
    let id = base64url("credential_id", &answer.credential_id)?;
    let client_data = if answer.client_data.trim_start().starts_with('{') {
        URL_SAFE_NO_PAD.encode(answer.client_data.as_bytes())
    } else {
        base64url("client_data", &answer.client_data)?
    };
    let attestation = answer.authenticator_data.as_deref().ok_or_else(|| {
        AgilicusError::invalid(
            "invalid_field",
            "authenticator_data (the attestation object) is required",
        )
    })?;
    let attestation = base64url("authenticator_data", attestation)?;
    let mut response = serde_json::json!({
        "clientDataJSON": client_data,
        "attestationObject": attestation,
    });
    if let Some(transports) = &answer.transports {
        response["transports"] = serde_json::json!(transports);
    }
    Ok(serde_json::json!({
        "id": id,
        "rawId": id,
        "type": "public-key",
        "response": response,
        "extensions": {},
    }))
}

/// The tenant's WebAuthn factor `raw` of its owner, or 404.
async fn webauthn_of(
    state: &State,
    principal: &Principal,
    raw: &str,
    given: Option<String>,
) -> Result<(Factor, Option<WebauthnRecord>), AgilicusError> {
    let id = FactorId::parse(raw).ok_or_else(AgilicusError::not_found)?;
    let record: Option<WebauthnRecord> = record_owner(state, principal, &id)
        .await?
        .and_then(|v| serde_json::from_value(v).ok());
    let user = match (given, &record) {
        (Some(user), _) => user,
        (None, Some(r)) => r.user_id.clone(),
        (None, None) => return Err(AgilicusError::not_found()),
    };
    let reader = acting_for(&principal.tenant, &[Scope::EnrollmentGet]);
    let factor = state.engine.factor(&reader, user, id).await?;
    if factor.kind() != FactorType::Webauthn {
        return Err(AgilicusError::not_found());
    }
    Ok((factor, record))
}

async fn save(
    state: &State,
    principal: &Principal,
    id: &FactorId,
    record: &WebauthnRecord,
) -> Result<(), AgilicusError> {
    let name = id.to_string();
    let key = crate::engine::records::RecordKey {
        namespace: ENROLLMENTS,
        name: &name,
    };
    let writer = acting_for(&principal.tenant, &[Scope::ConfigurationPut]);
    let document = serde_json::to_value(record).expect("a record encodes");
    if !state
        .engine
        .insert_record(&writer, key, document.clone())
        .await?
    {
        state
            .engine
            .update_record(&writer, key, move |_| Ok(document.clone()))
            .await?;
    }
    Ok(())
}

/// `create_webauthn_enrollment`: 201, with `status.challenge`.
pub async fn create(
    req: HttpRequest,
    payload: web::Payload,
    state: State,
) -> Result<HttpResponse, AgilicusError> {
    let principal = authenticate(&req, &state)?;
    require(&principal, Scope::EnrollmentPost)?;
    let input: WebauthnIn = body(&req, payload, &state).await?;
    let spec = input.spec;
    one_of(
        "attestation_conveyance",
        spec.attestation_conveyance.as_deref(),
        &CONVEYANCES,
    )?;
    one_of(
        "user_verification",
        spec.user_verification.as_deref(),
        &VERIFICATIONS,
    )?;
    for (field, value) in [
        ("attestation_format", &spec.attestation_format),
        ("http_endpoint", &spec.http_endpoint),
    ] {
        if let Some(v) = value {
            crate::engine::input::check_text(field, v, 1024)?;
        }
    }
    let request = EnrollRequest {
        kind: FactorType::Webauthn.as_str().into(),
        friendly_name: None,
        totp: Default::default(),
        push: Default::default(),
        webauthn: WebauthnOptions {
            relying_party_id: Some(spec.relying_party_id.clone()),
        },
    };
    let enrolled = state
        .engine
        .enroll(&principal, spec.user_id.clone(), request)
        .await?;
    let record = WebauthnRecord {
        user_id: spec.user_id.clone(),
        spec,
        transports: Vec::new(),
    };
    save(&state, &principal, &enrolled.factor.id, &record).await?;
    let mut out = render(&enrolled.factor, Some(&record));
    if let Some(ceremony) = &enrolled.ceremony {
        out.status.challenge = challenge_of(&ceremony.options);
    }
    Ok(HttpResponse::Created().json(out))
}

/// `list_webauthn_enrollments`: as the TOTP list, of WebAuthn enrollments.
pub async fn list(req: HttpRequest, state: State) -> Result<HttpResponse, AgilicusError> {
    let principal = authenticate(&req, &state)?;
    require(&principal, Scope::EnrollmentGet)?;
    let q: ListQuery = query(&req)?;
    let limit = q.limit()?;
    let found =
        super::enrollment::enrollments(&state, &principal, q.user_id, FactorType::Webauthn, limit)
            .await?;
    let mut out = Vec::with_capacity(found.len());
    for factor in &found {
        let record: Option<WebauthnRecord> = record_owner(&state, &principal, &factor.id)
            .await?
            .and_then(|v| serde_json::from_value(v).ok());
        out.push(render(factor, record.as_ref()));
    }
    Ok(HttpResponse::Ok().json(serde_json::json!({"limit": limit, "webauthn": out})))
}

/// `get_webauthn_enrollment`.
pub async fn get(
    req: HttpRequest,
    path: web::Path<String>,
    state: State,
) -> Result<HttpResponse, AgilicusError> {
    let principal = authenticate(&req, &state)?;
    require(&principal, Scope::EnrollmentGet)?;
    let q: UserQuery = query(&req)?;
    let (factor, record) = webauthn_of(&state, &principal, &path, q.user_id).await?;
    Ok(HttpResponse::Ok().json(render(&factor, record.as_ref())))
}

/// `update_webauthn_enrollment` (a POST): a valid attestation registers the credential;
/// anything else is 400 and the enrollment stays open.
pub async fn update(
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
    state: State,
) -> Result<HttpResponse, AgilicusError> {
    let principal = authenticate(&req, &state)?;
    require(&principal, Scope::EnrollmentPost)?;
    let q: UserQuery = query(&req)?;
    let answer: WebauthnAnswerIn = body(&req, payload, &state).await?;
    for t in answer.transports.iter().flatten() {
        one_of("transports", Some(t), &TRANSPORTS)?;
    }
    let (factor, record) = webauthn_of(
        &state,
        &principal,
        &path,
        q.user_id.or(answer.user_id.clone()),
    )
    .await?;
    let credential = credential(&answer)?;
    let verified = state
        .engine
        .verify_factor(
            &principal,
            factor.user_id.to_string(),
            factor.id,
            Proof::Credential(credential),
        )
        .await
        .map_err(|e| match e {
            crate::engine::Error::Conflict { .. } | crate::engine::Error::Invalid { .. } => {
                AgilicusError::answer_rejected()
            }
            other => AgilicusError::from(other),
        })?;
    let mut record = record.unwrap_or_else(|| WebauthnRecord {
        user_id: factor.user_id.to_string(),
        spec: render(&factor, None).spec,
        transports: Vec::new(),
    });
    record.transports = answer.transports.unwrap_or_default();
    save(&state, &principal, &factor.id, &record).await?;
    Ok(HttpResponse::Ok().json(render(&verified, Some(&record))))
}

/// `delete_webauthn_enrollment`: 204.
pub async fn delete(
    req: HttpRequest,
    path: web::Path<String>,
    state: State,
) -> Result<HttpResponse, AgilicusError> {
    let principal = authenticate(&req, &state)?;
    require(&principal, Scope::EnrollmentDelete)?;
    let q: UserQuery = query(&req)?;
    let (factor, _) = webauthn_of(&state, &principal, &path, q.user_id).await?;
    state
        .engine
        .delete_factor(&principal, factor.user_id.to_string(), factor.id)
        .await?;
    remove_owner(&state, &principal, &factor.id).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_credential_is_assembled_in_the_browsers_shape() {
        let answer = WebauthnAnswerIn {
            user_id: None,
            credential_id: STANDARD.encode([0xfb, 0xff, 1]),
            client_data: r#"{"type":"webauthn.create"}"#.into(),
            authenticator_data: Some(URL_SAFE_NO_PAD.encode([1, 2, 3])),
            transports: Some(vec!["usb".into()]),
        };
        let c = credential(&answer).unwrap();
        assert_eq!(c["id"], "-_8B", "base64url, whichever alphabet was given");
        assert_eq!(c["rawId"], c["id"]);
        assert_eq!(c["type"], "public-key");
        assert_eq!(
            c["response"]["clientDataJSON"],
            URL_SAFE_NO_PAD.encode(br#"{"type":"webauthn.create"}"#)
        );
        assert_eq!(c["response"]["attestationObject"], "AQID");
        assert_eq!(c["response"]["transports"][0], "usb");
    }

    #[test]
    fn a_credential_without_its_attestation_or_in_bad_base64_is_refused() {
        let mut answer = WebauthnAnswerIn {
            user_id: None,
            credential_id: "AQID".into(),
            client_data: "AQID".into(),
            authenticator_data: None,
            transports: None,
        };
        assert_eq!(credential(&answer).unwrap_err().code, "invalid_field");
        answer.authenticator_data = Some("AQID".into());
        answer.credential_id = "!!".into();
        assert_eq!(credential(&answer).unwrap_err().code, "invalid_field");
    }
}
