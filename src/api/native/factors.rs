//! `/api/v1/users/{user_id}/factors`: a user's enrolled factors. Each handler
//! authenticates and parses, makes one engine call (`engine::factors`: the checks, the
//! store, durability) and renders the outcome. The request and response shapes of
//! factors live here; a factor's secret appears only in the enrollment response.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::dto::rfc3339;
use crate::api::error::ErrorBody;
use crate::api::{authenticate, json_body, parse_json, query, ApiError, State};
use crate::engine::factors::{EnrollRequest, Proof, PushOptions, TotpOptions, WebauthnOptions};
use crate::engine::Error;
use crate::factors::push::Platform;
use crate::factors::totp::Algorithm;
use crate::factors::{Factor, FactorData, FactorStatus, FactorType};
use crate::model::FactorId;

pub const DEFAULT_PAGE_SIZE: usize = 50;
pub const MAX_PAGE_SIZE: usize = 1000;

/// `POST /api/v1/users/{user_id}/factors`
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EnrollFactor {
    /// `totp`, `webauthn` or `push`.
    #[serde(rename = "type")]
    pub kind: String,
    /// 1–64 characters; default: the type's name.
    pub friendly_name: Option<String>,
    /// TOTP: the issuer authenticator apps show; default `[totp] issuer`.
    pub issuer: Option<String>,
    /// TOTP: `sha1`, `sha256` or `sha512`; default `[totp] algorithm`.
    pub algorithm: Option<String>,
    /// TOTP: 6–8; default `[totp] digits`.
    pub digits: Option<u64>,
    /// TOTP: 20–60; default `[totp] period_seconds`.
    pub period_seconds: Option<u64>,
    /// TOTP: 0–2 steps either side of the current one; default `[totp] skew_steps`.
    pub skew_steps: Option<u64>,
    /// Push (required): base64 of the SPKI DER of the device's P-256 (ES256) key.
    pub public_key: Option<String>,
    /// Push: how the device hears of new challenges; default `{"platform": "none"}`.
    pub notification: Option<NotificationConfig>,
    /// WebAuthn: one of the tenant's relying parties (`[webauthn]` config); default the
    /// tenant's first.
    pub relying_party_id: Option<String>,
}

/// A push factor's notification config.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NotificationConfig {
    /// `webhook` (the server POSTs each new challenge to `[push] gateway_url`) or
    /// `none` (the device polls).
    pub platform: String,
}

/// `POST …/factors/{factor_id}/verify`
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyFactor {
    /// TOTP: a current code from the authenticator.
    pub code: Option<String>,
    /// Push: base64url of the device's DER ECDSA-P256-SHA256 signature of the UTF-8
    /// text `verify.` followed by the factor id.
    pub signature: Option<String>,
    /// WebAuthn: the attestation, the `PublicKeyCredential` that
    /// `navigator.credentials.create` returned as JSON (`toJSON()`: binary fields
    /// base64url), as an object or serialised into a string.
    #[schema(value_type = Option<Object>)]
    pub credential: Option<serde_json::Value>,
}

/// A WebAuthn factor's relying party and, once verified, its credential (all public).
#[derive(Debug, Serialize, ToSchema)]
pub struct WebauthnView {
    pub relying_party_id: String,
    /// `null` until the enrollment is verified.
    pub credential: Option<CredentialView>,
}

/// A registered WebAuthn credential.
#[derive(Debug, Serialize, ToSchema)]
pub struct CredentialView {
    /// The credential id, base64url (unpadded).
    pub id: String,
    /// The last signature counter accepted (0: the authenticator keeps none).
    pub sign_count: u32,
    /// The credential may be synced or backed up (a passkey).
    pub backup_eligible: bool,
    /// The credential is backed up or synced now.
    pub backup_state: bool,
}

/// A WebAuthn enrollment's open registration, in the enrollment response only.
#[derive(Debug, Serialize, ToSchema)]
pub struct RegistrationView {
    /// `{"publicKey": …}`: the PublicKeyCredentialCreationOptions (binary fields
    /// base64url) for `navigator.credentials.create`.
    #[schema(value_type = Object)]
    pub creation_options: serde_json::Value,
    /// The enrollment page on the relying party's origin, with its one-time token:
    /// it runs the ceremony in the user's browser and finishes the enrollment.
    pub enrollment_url: String,
    /// When the registration (and the page's token) closes.
    pub expires_at: String,
}

/// A push factor's device (never anything secret: the key is public).
#[derive(Debug, Serialize, ToSchema)]
pub struct PushView {
    /// `SHA256:` and the unpadded base64 of the SHA-256 of the key's SPKI DER.
    pub public_key_fingerprint: String,
    pub platform: Platform,
}

/// A TOTP factor's parameters (never its secret).
#[derive(Debug, Serialize, ToSchema)]
pub struct TotpView {
    pub algorithm: Algorithm,
    pub digits: u8,
    pub period_seconds: u32,
    pub skew_steps: u8,
}

/// A factor as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct FactorDto {
    /// `fac_…`
    pub id: String,
    #[serde(rename = "type")]
    pub kind: FactorType,
    pub user_id: String,
    pub friendly_name: String,
    pub status: FactorStatus,
    pub created_at: String,
    pub updated_at: String,
    pub last_used_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub totp: Option<TotpView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub push: Option<PushView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webauthn: Option<WebauthnView>,
    /// Enrollment response only (WebAuthn): the registration to answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub registration: Option<RegistrationView>,
    /// Enrollment response only: the seed, base32 (RFC 4648, unpadded).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// Enrollment response only: the key URI an authenticator app imports.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub otpauth_uri: Option<String>,
    /// Enrollment response only: a QR code of `otpauth_uri`, an SVG document.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub qr_svg: Option<String>,
}

impl FactorDto {
    pub fn new(f: &Factor) -> Self {
        let webauthn = match &f.data {
            FactorData::Webauthn(w) => Some(WebauthnView {
                relying_party_id: w.relying_party.to_string(),
                credential: w.credential.as_ref().map(|c| CredentialView {
                    id: base64::Engine::encode(
                        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
                        &c.id,
                    ),
                    sign_count: c.counter,
                    backup_eligible: c.backup_eligible,
                    backup_state: c.backup_state,
                }),
            }),
            _ => None,
        };
        let (totp, push) = match &f.data {
            FactorData::Totp(totp) => (
                Some(TotpView {
                    algorithm: totp.params.algorithm,
                    digits: totp.params.digits,
                    period_seconds: totp.params.period_seconds,
                    skew_steps: totp.params.skew_steps,
                }),
                None,
            ),
            FactorData::Push(device) => (
                None,
                Some(PushView {
                    public_key_fingerprint: device.fingerprint(),
                    platform: device.platform,
                }),
            ),
            FactorData::Webauthn(_) => (None, None),
        };
        FactorDto {
            id: f.id.to_string(),
            kind: f.kind(),
            user_id: f.user_id.to_string(),
            friendly_name: f.friendly_name.to_string(),
            status: f.status,
            created_at: rfc3339(f.created_at),
            updated_at: rfc3339(f.updated_at),
            last_used_at: f.last_used_at.map(rfc3339),
            totp,
            push,
            webauthn,
            registration: None,
            secret: None,
            otpauth_uri: None,
            qr_svg: None,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FactorList {
    pub factors: Vec<FactorDto>,
    pub next_page_token: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct FactorListQuery {
    /// 1..=1000, default 50.
    #[param(minimum = 1, maximum = 1000)]
    pub page_size: Option<usize>,
    /// `next_page_token` of the previous page.
    #[param(pattern = "^fac_[A-Za-z0-9_-]{21}[AQgw]$")]
    pub page_token: Option<String>,
}

/// A factor id that cannot be one is a factor that does not exist.
fn factor_id(raw: &str) -> Result<FactorId, ApiError> {
    FactorId::parse(raw).ok_or(Error::FactorNotFound.into())
}

/// Enroll a factor; its secret (TOTP) or its registration (WebAuthn) is in this
/// response only.
#[utoipa::path(post, path = "/api/v1/users/{user_id}/factors", tag = "factors",
    params(("user_id" = String, Path)), request_body = EnrollFactor,
    responses((status = 201, description = "enrolled, unverified; secret, otpauth_uri, qr_svg and registration appear here only", body = FactorDto),
        (status = 400, description = "invalid_field, invalid_public_key, out_of_range, unknown_relying_party", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = ["challenge:enrollment:post"])))]
pub async fn enroll(
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
    state: State,
) -> Result<HttpResponse, ApiError> {
    let principal = authenticate(&req, &state)?;
    let body = json_body(&req, payload, state.settings.server.body_limit_bytes).await?;
    let request: EnrollFactor = parse_json(&body)?;
    let request = EnrollRequest {
        kind: request.kind,
        friendly_name: request.friendly_name,
        totp: TotpOptions {
            issuer: request.issuer,
            algorithm: request.algorithm,
            digits: request.digits,
            period_seconds: request.period_seconds,
            skew_steps: request.skew_steps,
            account_name: None,
        },
        push: PushOptions {
            public_key: request.public_key,
            platform: request.notification.map(|n| n.platform),
        },
        webauthn: WebauthnOptions {
            relying_party_id: request.relying_party_id,
        },
    };
    let enrolled = state
        .engine
        .enroll(&principal, path.into_inner(), request)
        .await?;
    let mut dto = FactorDto::new(&enrolled.factor);
    if let Some(secret) = &enrolled.secret {
        dto.secret = Some(secret.secret.to_string());
        dto.otpauth_uri = Some(secret.otpauth_uri.to_string());
        dto.qr_svg = Some(secret.qr_svg.to_string());
    }
    if let Some(ceremony) = enrolled.ceremony {
        dto.registration = Some(RegistrationView {
            creation_options: ceremony.options,
            enrollment_url: ceremony.page_url,
            expires_at: rfc3339(ceremony.expires_at),
        });
    }
    Ok(HttpResponse::Created()
        .insert_header(("Cache-Control", "no-store"))
        .json(dto))
}

/// List a user's factors, in id order, a page at a time.
#[utoipa::path(get, path = "/api/v1/users/{user_id}/factors", tag = "factors",
    params(("user_id" = String, Path), FactorListQuery),
    responses((status = 200, body = FactorList), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = ["challenge:enrollment:get"])))]
pub async fn list(
    req: HttpRequest,
    path: web::Path<String>,
    state: State,
) -> Result<HttpResponse, ApiError> {
    let principal = authenticate(&req, &state)?;
    let q: FactorListQuery = query(&req)?;
    let (page_size, after) = crate::api::page(
        q.page_size,
        DEFAULT_PAGE_SIZE,
        MAX_PAGE_SIZE,
        q.page_token.as_deref(),
        FactorId::parse,
    )?;
    let (page, next) = state
        .engine
        .factors(&principal, path.into_inner(), after, page_size)
        .await?;
    Ok(HttpResponse::Ok().json(FactorList {
        factors: page.iter().map(FactorDto::new).collect(),
        next_page_token: next.map(|id| id.to_string()),
    }))
}

/// Read one of a user's factors (never its secret).
#[utoipa::path(get, path = "/api/v1/users/{user_id}/factors/{factor_id}", tag = "factors",
    params(("user_id" = String, Path), ("factor_id" = String, Path)),
    responses((status = 200, body = FactorDto),
        (status = 400, description = "invalid_field: a user id that cannot be one", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, description = "factor_not_found", body = ErrorBody)),
    security(("bearer" = ["challenge:enrollment:get"])))]
pub async fn get(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    state: State,
) -> Result<HttpResponse, ApiError> {
    let principal = authenticate(&req, &state)?;
    let (user_id, raw) = path.into_inner();
    let factor = state
        .engine
        .factor(&principal, user_id, factor_id(&raw)?)
        .await?;
    Ok(HttpResponse::Ok().json(FactorDto::new(&factor)))
}

/// Finish an enrollment with a current code (TOTP), the device's signature (push) or
/// the attestation (WebAuthn): `verified`.
#[utoipa::path(post, path = "/api/v1/users/{user_id}/factors/{factor_id}/verify", tag = "factors",
    params(("user_id" = String, Path), ("factor_id" = String, Path)), request_body = VerifyFactor,
    responses((status = 200, description = "verified", body = FactorDto),
        (status = 400, description = "wrong_answer, attestation_rejected (the factor stays unverified), invalid_field, invalid_credential", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, description = "factor_not_found", body = ErrorBody),
        (status = 409, description = "factor_already_verified, enrollment_expired, credential_already_registered", body = ErrorBody)),
    security(("bearer" = ["challenge:enrollment:post"])))]
pub async fn verify(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    payload: web::Payload,
    state: State,
) -> Result<HttpResponse, ApiError> {
    let principal = authenticate(&req, &state)?;
    let body = json_body(&req, payload, state.settings.server.body_limit_bytes).await?;
    let request: VerifyFactor = parse_json(&body)?;
    let proof = match (request.code, request.signature, request.credential) {
        (Some(code), None, None) => Proof::Code(code),
        (None, Some(signature), None) => Proof::Signature(signature),
        (None, None, Some(credential)) => Proof::Credential(credential),
        _ => {
            return Err(ApiError::invalid(
                "invalid_field",
                "give code (totp), signature (push) or credential (webauthn)",
            ))
        }
    };
    let (user_id, raw) = path.into_inner();
    let factor = state
        .engine
        .verify_factor(&principal, user_id, factor_id(&raw)?, proof)
        .await?;
    Ok(HttpResponse::Ok().json(FactorDto::new(&factor)))
}

/// Delete a factor; challenges naming it accept no code from then on.
#[utoipa::path(delete, path = "/api/v1/users/{user_id}/factors/{factor_id}", tag = "factors",
    params(("user_id" = String, Path), ("factor_id" = String, Path)),
    responses((status = 204, description = "deleted"),
        (status = 400, description = "invalid_field: a user id that cannot be one", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, description = "factor_not_found", body = ErrorBody)),
    security(("bearer" = ["challenge:enrollment:delete"])))]
pub async fn delete(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    state: State,
) -> Result<HttpResponse, ApiError> {
    let principal = authenticate(&req, &state)?;
    let (user_id, raw) = path.into_inner();
    state
        .engine
        .delete_factor(&principal, user_id, factor_id(&raw)?)
        .await?;
    Ok(HttpResponse::NoContent().finish())
}
