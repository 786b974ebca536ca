//! Factors (`…/Entities/{Identity}/Factors`): engine factors of the entity's user.
//! `totp` and `push` enroll through `engine::factors`; what Twilio's factor has beyond
//! the engine's (`metadata`, a push factor's app and notification config) is a face
//! record. `binding` (the TOTP seed and key URI, or the push key) is in the create
//! response only. A TOTP factor is verified with `AuthPayload` = a current code (a wrong
//! one is a 200 still `unverified`, as Twilio answers now); a push factor with
//! `AuthPayload` = base64 of the device's DER signature of the factor SID.

use actix_web::{web, HttpRequest, HttpResponse};
use base64::Engine as _;
use serde_json::{json, Value};

use super::dto::{date, FactorRecord};
use super::errors::TwilioError;
use super::form::Form;
use super::{
    authenticate, entity, entity_or_new, form_body, origin, page_of, paged, query, service, sid,
    user_id, Account, FACTORS, MAX_LISTED,
};
use crate::api::State;
use crate::engine::factors::{EnrollRequest, Proof, PushOptions, TotpOptions};
use crate::engine::records::RecordKey;
use crate::engine::Error;
use crate::factors::{Factor, FactorData};
use crate::model::FactorId;

type Reply = Result<HttpResponse, TwilioError>;

pub const MAX_METADATA: usize = 1024;

fn record_key(sid: &str) -> RecordKey<'_> {
    RecordKey {
        namespace: FACTORS,
        name: sid,
    }
}

/// Everything a factor handler needs of its path: the account, the service, the entity.
pub struct Owner {
    pub account: Account,
    pub service_sid: String,
    pub identity: String,
    pub entity_sid: String,
    pub user_id: String,
    pub service: super::dto::ServiceRecord,
}

/// The path's service and existing entity, or 404.
pub async fn owner(
    req: &HttpRequest,
    state: &State,
    service_sid: &str,
    identity: &str,
) -> Result<Owner, TwilioError> {
    let account = authenticate(req, state)?;
    let svc = service(state, &account, service_sid).await?;
    let found = entity(state, &account, service_sid, identity)
        .await?
        .ok_or_else(TwilioError::not_found)?;
    Ok(Owner {
        account,
        service_sid: service_sid.to_string(),
        identity: identity.to_string(),
        entity_sid: found.sid,
        user_id: user_id(service_sid, identity),
        service: svc,
    })
}

/// The factor's Twilio record (empty if it has none).
pub async fn record(
    state: &State,
    account: &Account,
    sid: &str,
) -> Result<FactorRecord, TwilioError> {
    Ok(state
        .engine
        .record(&account.principal, record_key(sid))
        .await?
        .and_then(|v| serde_json::from_value(v).ok())
        .unwrap_or_default())
}

/// The entity's factor `sid`, or 404 20404.
pub async fn find(state: &State, owner: &Owner, factor_sid: &str) -> Result<Factor, TwilioError> {
    let id = sid::factor_id(factor_sid).ok_or_else(TwilioError::not_found)?;
    Ok(state
        .engine
        .factor(&owner.account.principal, owner.user_id.clone(), id)
        .await?)
}

/// Deletes an engine factor and its record.
pub async fn remove(
    state: &State,
    account: &Account,
    user: &str,
    id: FactorId,
) -> Result<(), TwilioError> {
    state
        .engine
        .delete_factor(&account.principal, user.to_string(), id)
        .await?;
    state
        .engine
        .remove_record(&account.principal, record_key(&sid::factor(&id)))
        .await?;
    Ok(())
}

pub fn render(base: &str, owner: &Owner, f: &Factor, r: &FactorRecord) -> Value {
    let sid = sid::factor(&f.id);
    let (factor_type, config) = match &f.data {
        FactorData::Totp(t) => (
            "totp",
            json!({
                "time_step": t.params.period_seconds,
                "skew": t.params.skew_steps,
                "code_length": t.params.digits,
                "alg": t.params.algorithm.as_str(),
            }),
        ),
        FactorData::Push(_) => (
            "push",
            json!({
                "sdk_version": r.sdk_version,
                "app_id": r.app_id,
                "notification_platform": r.notification_platform.as_deref().unwrap_or("none"),
                "notification_token": r.notification_token,
            }),
        ),
        // Enrolled through the native API for this entity's user: listed, not served.
        FactorData::Webauthn(_) => ("passkeys", json!({})),
    };
    json!({
        "sid": sid,
        "account_sid": owner.account.sid,
        "service_sid": owner.service_sid,
        "entity_sid": owner.entity_sid,
        "identity": owner.identity,
        "date_created": date(f.created_at),
        "date_updated": date(f.updated_at),
        "friendly_name": &*f.friendly_name,
        "status": f.status.as_str(),
        "factor_type": factor_type,
        "config": config,
        "metadata": r.metadata.clone().unwrap_or_default(),
        "url": format!(
            "{base}/v2/Services/{}/Entities/{}/Factors/{sid}",
            owner.service_sid, owner.identity
        ),
    })
}

fn text(
    form: &Form,
    name: &str,
    range: std::ops::RangeInclusive<usize>,
) -> Result<Option<String>, TwilioError> {
    match form.get(name)? {
        None => Ok(None),
        Some(v) if !range.contains(&v.chars().count()) || v.chars().any(char::is_control) => {
            Err(TwilioError::invalid(format!(
                "{name} must be {} to {} characters",
                range.start(),
                range.end()
            )))
        }
        Some(v) => Ok(Some(v.to_string())),
    }
}

/// Tells the service's webhooks about a factor (`factor.created`, `…verified`,
/// `…deleted`).
async fn factor_event(state: &State, owner: &Owner, event: &str, f: &Factor) {
    let factor_type = match f.data {
        FactorData::Totp(_) => "totp",
        FactorData::Push(_) => "push",
        FactorData::Webauthn(_) => "passkeys",
    };
    let fields = [
        ("entity_identity", owner.identity.clone()),
        ("entity_sid", owner.entity_sid.clone()),
        ("factor_sid", sid::factor(&f.id)),
        ("factor_type", factor_type.to_string()),
        ("factor_friendly_name", f.friendly_name.to_string()),
    ];
    super::webhooks::send(
        state,
        &owner.account,
        &owner.service_sid,
        event,
        *f.id.as_bytes(),
        &fields,
    )
    .await;
}

/// `POST /v2/Services/{VA}/Entities/{Identity}/Factors`: enrolls (creating the entity).
pub async fn create(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    payload: web::Payload,
    state: State,
) -> Reply {
    let (service_sid, identity) = path.into_inner();
    let account = authenticate(&req, &state)?;
    let svc = service(&state, &account, &service_sid).await?;
    let form = form_body(&req, payload, &state).await?;
    let friendly_name = text(&form, "FriendlyName", 1..=64)?
        .ok_or_else(|| TwilioError::invalid("Missing required parameter FriendlyName"))?;
    let kind = form.required("FactorType")?.to_string();
    let metadata = form.string_map("Metadata", MAX_METADATA)?;
    let mut record = FactorRecord {
        metadata,
        ..FactorRecord::default()
    };
    let request = match kind.as_str() {
        "totp" => {
            if form.get("Binding.Secret")?.is_some() {
                return Err(TwilioError::invalid(
                    "Binding.Secret is not taken: the server generates every seed",
                ));
            }
            EnrollRequest {
                kind: "totp".into(),
                friendly_name: Some(friendly_name.clone()),
                totp: TotpOptions {
                    issuer: Some(
                        svc.totp_issuer
                            .clone()
                            .unwrap_or_else(|| svc.friendly_name.clone()),
                    ),
                    account_name: Some(friendly_name.clone()),
                    algorithm: form.get("Config.Alg")?.map(str::to_string),
                    digits: Some(
                        form.number("Config.CodeLength", 3..=8)?
                            .unwrap_or(svc.totp_code_length),
                    ),
                    period_seconds: Some(
                        form.number("Config.TimeStep", 20..=60)?
                            .unwrap_or(svc.totp_time_step),
                    ),
                    skew_steps: Some(form.number("Config.Skew", 0..=2)?.unwrap_or(svc.totp_skew)),
                },
                push: PushOptions::default(),
                webauthn: Default::default(),
            }
        }
        "push" => {
            if form.get("Binding.Alg")?.is_some_and(|a| a != "ES256") {
                return Err(TwilioError::invalid("Binding.Alg must be ES256"));
            }
            let key = form.required("Binding.PublicKey")?.to_string();
            record.app_id =
                Some(text(&form, "Config.AppId", 1..=100)?.ok_or_else(|| {
                    TwilioError::invalid("Missing required parameter Config.AppId")
                })?);
            record.sdk_version =
                Some(text(&form, "Config.SdkVersion", 1..=64)?.ok_or_else(|| {
                    TwilioError::invalid("Missing required parameter Config.SdkVersion")
                })?);
            let platform = form.get("Config.NotificationPlatform")?.unwrap_or("none");
            if !matches!(platform, "apn" | "fcm" | "none") {
                return Err(TwilioError::invalid(
                    "Config.NotificationPlatform must be apn, fcm or none",
                ));
            }
            record.notification_platform = Some(platform.to_string());
            record.notification_token = text(&form, "Config.NotificationToken", 32..=255)?;
            if platform != "none" && record.notification_token.is_none() {
                return Err(TwilioError::invalid(
                    "Missing required parameter Config.NotificationToken",
                ));
            }
            EnrollRequest {
                kind: "push".into(),
                friendly_name: Some(friendly_name.clone()),
                totp: TotpOptions::default(),
                push: PushOptions {
                    public_key: Some(key),
                    platform: None,
                },
                webauthn: Default::default(),
            }
        }
        _ => return Err(TwilioError::invalid("FactorType must be totp or push")),
    };
    let (entity, _) = entity_or_new(&state, &account, &service_sid, &identity).await?;
    let owner = Owner {
        account,
        user_id: user_id(&service_sid, &identity),
        service_sid,
        identity,
        entity_sid: entity.sid,
        service: svc,
    };
    let enrolled = state
        .engine
        .enroll(&owner.account.principal, owner.user_id.clone(), request)
        .await
        .map_err(|e| match e {
            Error::Invalid { message, .. } => TwilioError::invalid(message),
            other => other.into(),
        })?;
    let factor_sid = sid::factor(&enrolled.factor.id);
    let document = serde_json::to_value(&record).expect("a record encodes");
    state
        .engine
        .insert_record(&owner.account.principal, record_key(&factor_sid), document)
        .await?;
    let mut body = render(&origin(&req, &state), &owner, &enrolled.factor, &record);
    body["binding"] = match (&enrolled.secret, &enrolled.factor.data) {
        (Some(secret), _) => json!({
            "secret": secret.secret.as_str(),
            "uri": secret.otpauth_uri.as_str(),
        }),
        (None, FactorData::Push(key)) => json!({
            "public_key": base64::engine::general_purpose::STANDARD.encode(&key.public_key),
            "alg": "ES256",
        }),
        _ => json!({}),
    };
    body["options"] = json!({});
    factor_event(&state, &owner, "factor.created", &enrolled.factor).await;
    Ok(HttpResponse::Created().json(body))
}

/// `GET …/Factors/{YF}`
pub async fn fetch(
    req: HttpRequest,
    path: web::Path<(String, String, String)>,
    state: State,
) -> Reply {
    let (service_sid, identity, factor_sid) = path.into_inner();
    let owner = owner(&req, &state, &service_sid, &identity).await?;
    let factor = find(&state, &owner, &factor_sid).await?;
    let record = record(&state, &owner.account, &factor_sid).await?;
    Ok(HttpResponse::Ok().json(render(&origin(&req, &state), &owner, &factor, &record)))
}

/// Decodes a device signature: base64 (standard or URL-safe, padded or not) of DER.
pub fn signature(raw: &str) -> Option<Vec<u8>> {
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    let raw = raw.trim();
    [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD]
        .iter()
        .find_map(|engine| engine.decode(raw).ok())
}

/// `POST …/Factors/{YF}`: verifies it with `AuthPayload`; renames it (`FriendlyName`);
/// updates the push config (`Config.NotificationToken`, `Config.SdkVersion`,
/// `Config.NotificationPlatform`) or a TOTP factor's code parameters (`Config.TimeStep`,
/// `Config.Skew`, `Config.CodeLength`, `Config.Alg`; the seed stays).
pub async fn update(
    req: HttpRequest,
    path: web::Path<(String, String, String)>,
    payload: web::Payload,
    state: State,
) -> Reply {
    let (service_sid, identity, factor_sid) = path.into_inner();
    let owner = owner(&req, &state, &service_sid, &identity).await?;
    let mut factor = find(&state, &owner, &factor_sid).await?;
    let form = form_body(&req, payload, &state).await?;
    let retune = crate::engine::factors::TotpChange {
        algorithm: form.get("Config.Alg")?.map(str::to_string),
        digits: form.number("Config.CodeLength", 3..=8)?.map(|n| n as u32),
        period_seconds: form.number("Config.TimeStep", 20..=60)?.map(|n| n as u32),
        skew_steps: form.number("Config.Skew", 0..=2)?.map(|n| n as u32),
    };
    let retuning = retune.algorithm.is_some()
        || retune.digits.is_some()
        || retune.period_seconds.is_some()
        || retune.skew_steps.is_some();
    if retuning && !matches!(factor.data, FactorData::Totp(_)) {
        return Err(TwilioError::invalid(
            "Config.TimeStep, Config.Skew, Config.CodeLength and Config.Alg are totp settings",
        ));
    }
    // Checked before anything changes; the engine holds the bounds again.
    if let Some(alg) = retune.algorithm.as_deref() {
        if crate::factors::totp::Algorithm::parse(alg).is_none() {
            return Err(TwilioError::invalid(
                "Config.Alg must be sha1, sha256 or sha512",
            ));
        }
    }
    if let Some(name) = text(&form, "FriendlyName", 1..=64)? {
        factor = state
            .engine
            .rename_factor(
                &owner.account.principal,
                owner.user_id.clone(),
                factor.id,
                name,
            )
            .await?;
    }
    if retuning {
        factor = state
            .engine
            .retune_totp(
                &owner.account.principal,
                owner.user_id.clone(),
                factor.id,
                retune,
            )
            .await?;
    }
    let mut record = record(&state, &owner.account, &factor_sid).await?;
    let token = text(&form, "Config.NotificationToken", 32..=255)?;
    let sdk = text(&form, "Config.SdkVersion", 1..=64)?;
    let platform = form.get("Config.NotificationPlatform")?;
    if token.is_some() || sdk.is_some() || platform.is_some() {
        if !matches!(factor.data, FactorData::Push(_)) {
            return Err(TwilioError::invalid(
                "Config.Notification* and Config.SdkVersion are push settings",
            ));
        }
        if let Some(p) = platform {
            if !matches!(p, "apn" | "fcm" | "none") {
                return Err(TwilioError::invalid(
                    "Config.NotificationPlatform must be apn, fcm or none",
                ));
            }
            record.notification_platform = Some(p.to_string());
        }
        record.notification_token = token.or(record.notification_token);
        record.sdk_version = sdk.or(record.sdk_version);
        let document = serde_json::to_value(&record).expect("a record encodes");
        let key = record_key(&factor_sid);
        let principal = &owner.account.principal;
        if state
            .engine
            .update_record(principal, key, {
                let document = document.clone();
                move |_| Ok(document.clone())
            })
            .await?
            .is_none()
        {
            state.engine.insert_record(principal, key, document).await?;
        }
    }
    if let Some(payload) = form.get("AuthPayload")? {
        let proof = match factor.data {
            FactorData::Totp(_) => {
                if !(3..=8).contains(&payload.len()) {
                    return Err(TwilioError::invalid(
                        "AuthPayload must be 3 to 8 characters",
                    ));
                }
                Proof::Code(payload.to_string())
            }
            FactorData::Push(_) => Proof::Signed {
                message: factor_sid.clone(),
                der: signature(payload).ok_or_else(|| {
                    TwilioError::invalid("AuthPayload must be the base64 of a DER signature")
                })?,
            },
            FactorData::Webauthn(_) => {
                return Err(TwilioError::invalid(
                    "passkeys factors are verified through the native API",
                ))
            }
        };
        match state
            .engine
            .verify_factor(
                &owner.account.principal,
                owner.user_id.clone(),
                factor.id,
                proof,
            )
            .await
        {
            Ok(verified) => {
                factor = verified;
                factor_event(&state, &owner, "factor.verified", &factor).await;
            }
            // A wrong proof is not an error in Twilio's API: the factor stays unverified.
            Err(Error::WrongCode) => {}
            Err(Error::Conflict {
                code: "factor_already_verified",
                ..
            }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(HttpResponse::Ok().json(render(&origin(&req, &state), &owner, &factor, &record)))
}

/// `DELETE …/Factors/{YF}`
pub async fn delete(
    req: HttpRequest,
    path: web::Path<(String, String, String)>,
    state: State,
) -> Reply {
    let (service_sid, identity, factor_sid) = path.into_inner();
    let owner = owner(&req, &state, &service_sid, &identity).await?;
    let factor = find(&state, &owner, &factor_sid).await?;
    remove(&state, &owner.account, &owner.user_id, factor.id).await?;
    factor_event(&state, &owner, "factor.deleted", &factor).await;
    Ok(HttpResponse::NoContent().finish())
}

/// `GET …/Factors`: the entity's factors, oldest first.
pub async fn list(req: HttpRequest, path: web::Path<(String, String)>, state: State) -> Reply {
    let (service_sid, identity) = path.into_inner();
    let owner = owner(&req, &state, &service_sid, &identity).await?;
    let page = page_of(&query(&req))?;
    let mut factors = Vec::new();
    let mut after = None;
    loop {
        let (batch, next) = state
            .engine
            .factors(&owner.account.principal, owner.user_id.clone(), after, 1000)
            .await?;
        factors.extend(batch);
        match next {
            Some(n) if factors.len() < MAX_LISTED => after = Some(n),
            _ => break,
        }
    }
    factors.sort_by_key(|f| (f.created_at, f.id));
    let base = origin(&req, &state);
    let mut items = Vec::with_capacity(factors.len());
    for f in &factors {
        let r = record(&state, &owner.account, &sid::factor(&f.id)).await?;
        items.push(render(&base, &owner, f, &r));
    }
    let url = format!("{base}/v2/Services/{service_sid}/Entities/{identity}/Factors");
    Ok(HttpResponse::Ok().json(paged(items, "factors", &url, &[], page)))
}
