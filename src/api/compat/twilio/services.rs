//! Services, Entities, AccessTokens and Webhooks: the face's own resources, kept as
//! engine records of the account's tenant (`engine::records`). Deleting a service or an
//! entity deletes what hangs below it: its entities, their factors (engine factors, so
//! challenges naming them accept nothing more) and its webhooks.

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Value};

use super::dto::{date, EntityRecord, ServiceRecord, WebhookRecord};
use super::errors::TwilioError;
use super::form::Form;
use super::{
    authenticate, check_identity, entity, entity_name, entity_or_new, form_body, origin, page_of,
    paged, query, service, sid, user_id, Account, ENTITIES, MAX_LISTED, SERVICES, WEBHOOKS,
};
use crate::api::State;
use crate::engine::records::RecordKey;

type Reply = Result<HttpResponse, TwilioError>;

fn service_key(sid: &str) -> RecordKey<'_> {
    RecordKey {
        namespace: SERVICES,
        name: sid,
    }
}

fn render_service(base: &str, sid: &str, s: &ServiceRecord) -> Value {
    let url = format!("{base}/v2/Services/{sid}");
    json!({
        "sid": sid,
        "account_sid": s.account_sid,
        "friendly_name": s.friendly_name,
        "code_length": s.code_length,
        "lookup_enabled": false,
        "psd2_enabled": false,
        "skip_sms_to_landlines": false,
        "dtmf_input_required": false,
        "do_not_share_warning_enabled": false,
        "custom_code_enabled": false,
        "verify_event_subscription_enabled": false,
        "push": {
            "include_date": s.push_include_date,
            "apn_credential_sid": s.push_apn_credential_sid,
            "fcm_credential_sid": s.push_fcm_credential_sid,
        },
        "totp": {
            "issuer": s.totp_issuer.as_deref().unwrap_or(&s.friendly_name),
            "time_step": s.totp_time_step,
            "code_length": s.totp_code_length,
            "skew": s.totp_skew,
        },
        "date_created": date(s.created_at),
        "date_updated": date(s.updated_at),
        "url": url,
        "links": {
            "entities": format!("{url}/Entities"),
            "webhooks": format!("{url}/Webhooks"),
            "access_tokens": format!("{url}/AccessTokens"),
        },
    })
}

fn text(form: &Form, name: &str, max: usize) -> Result<Option<String>, TwilioError> {
    match form.get(name)? {
        None => Ok(None),
        Some(v) if v.is_empty() || v.chars().count() > max || v.chars().any(char::is_control) => {
            Err(TwilioError::invalid(format!(
                "{name} must be 1 to {max} characters"
            )))
        }
        Some(v) => Ok(Some(v.to_string())),
    }
}

/// Applies the service options of a create or update form to `s`.
fn apply_service(form: &Form, s: &mut ServiceRecord) -> Result<(), TwilioError> {
    if let Some(name) = text(form, "FriendlyName", 64)? {
        s.friendly_name = name;
    }
    if let Some(n) = form.number("CodeLength", 4..=10)? {
        s.code_length = n;
    }
    if let Some(issuer) = text(form, "Totp.Issuer", 64)? {
        s.totp_issuer = Some(issuer);
    }
    if let Some(n) = form.number("Totp.TimeStep", 20..=60)? {
        s.totp_time_step = n;
    }
    if let Some(n) = form.number("Totp.CodeLength", 6..=8)? {
        s.totp_code_length = n;
    }
    if let Some(n) = form.number("Totp.Skew", 0..=2)? {
        s.totp_skew = n;
    }
    if let Some(b) = form.boolean("Push.IncludeDate")? {
        s.push_include_date = b;
    }
    if let Some(v) = text(form, "Push.ApnCredentialSid", 34)? {
        s.push_apn_credential_sid = Some(v);
    }
    if let Some(v) = text(form, "Push.FcmCredentialSid", 34)? {
        s.push_fcm_credential_sid = Some(v);
    }
    Ok(())
}

/// `POST /v2/Services`
pub async fn create(req: HttpRequest, payload: web::Payload, state: State) -> Reply {
    let account = authenticate(&req, &state)?;
    let form = form_body(&req, payload, &state).await?;
    form.required("FriendlyName")?;
    let now = state.engine.now_ms();
    let totp = &state.settings.totp;
    let mut record = ServiceRecord {
        account_sid: account.sid.clone(),
        friendly_name: String::new(),
        code_length: 6,
        totp_issuer: None,
        totp_time_step: u64::from(totp.period_seconds),
        totp_code_length: u64::from(totp.digits),
        totp_skew: u64::from(totp.skew_steps),
        push_include_date: false,
        push_apn_credential_sid: None,
        push_fcm_credential_sid: None,
        created_at: now,
        updated_at: now,
    };
    apply_service(&form, &mut record)?;
    let sid = sid::random(sid::SERVICE);
    let document = serde_json::to_value(&record).expect("a record encodes");
    if !state
        .engine
        .insert_record(&account.principal, service_key(&sid), document)
        .await?
    {
        return Err(TwilioError::new(500, 20500, "a fresh SID was taken"));
    }
    Ok(HttpResponse::Created().json(render_service(&origin(&req, &state), &sid, &record)))
}

/// `GET /v2/Services/{VA}`
pub async fn fetch(req: HttpRequest, path: web::Path<String>, state: State) -> Reply {
    let account = authenticate(&req, &state)?;
    let record = service(&state, &account, &path).await?;
    Ok(HttpResponse::Ok().json(render_service(&origin(&req, &state), &path, &record)))
}

/// `POST /v2/Services/{VA}`
pub async fn update(
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
    state: State,
) -> Reply {
    let account = authenticate(&req, &state)?;
    service(&state, &account, &path).await?;
    let form = form_body(&req, payload, &state).await?;
    let now = state.engine.now_ms();
    let owner = account.sid.clone();
    let updated = state
        .engine
        .update_record(&account.principal, service_key(&path), move |v| {
            let mut s: ServiceRecord =
                serde_json::from_value(v).map_err(|_| crate::engine::Error::Internal)?;
            if s.account_sid != owner {
                return Err(crate::engine::Error::ChallengeNotFound);
            }
            apply_service(&form, &mut s)
                .map_err(|e| crate::engine::Error::invalid("invalid_field", e.message))?;
            s.updated_at = now;
            Ok(serde_json::to_value(&s).expect("a record encodes"))
        })
        .await?
        .ok_or_else(TwilioError::not_found)?;
    let record: ServiceRecord =
        serde_json::from_value(updated).map_err(|_| TwilioError::new(500, 20500, "bad record"))?;
    Ok(HttpResponse::Ok().json(render_service(&origin(&req, &state), &path, &record)))
}

/// `GET /v2/Services`
pub async fn list(req: HttpRequest, state: State) -> Reply {
    let account = authenticate(&req, &state)?;
    let query = query(&req);
    let page = page_of(&query)?;
    let (records, _) = state
        .engine
        .records(
            &account.principal,
            SERVICES,
            String::new(),
            None,
            MAX_LISTED,
        )
        .await?;
    let base = origin(&req, &state);
    let mut all: Vec<(i64, String, Value)> = records
        .into_iter()
        .filter_map(|(sid, v)| {
            let s: ServiceRecord = serde_json::from_value(v).ok()?;
            (s.account_sid == account.sid)
                .then(|| (s.created_at, sid.clone(), render_service(&base, &sid, &s)))
        })
        .collect();
    all.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
    let items = all.into_iter().map(|(_, _, v)| v).collect();
    let url = format!("{base}/v2/Services");
    Ok(HttpResponse::Ok().json(paged(items, "services", &url, &[], page)))
}

/// Deletes every factor of an entity and the entity.
async fn remove_entity(
    state: &State,
    account: &Account,
    service_sid: &str,
    identity: &str,
) -> Result<(), TwilioError> {
    let user = user_id(service_sid, identity);
    loop {
        let (factors, _) = state
            .engine
            .factors(&account.principal, user.clone(), None, 100)
            .await?;
        if factors.is_empty() {
            break;
        }
        for f in factors {
            super::factors::remove(state, account, &user, f.id).await?;
        }
    }
    let name = entity_name(service_sid, identity);
    state
        .engine
        .remove_record(
            &account.principal,
            RecordKey {
                namespace: ENTITIES,
                name: &name,
            },
        )
        .await?;
    Ok(())
}

/// `DELETE /v2/Services/{VA}`: the service, its entities (and their factors), its
/// webhooks.
pub async fn delete(req: HttpRequest, path: web::Path<String>, state: State) -> Reply {
    let account = authenticate(&req, &state)?;
    service(&state, &account, &path).await?;
    let prefix = format!("{path}/");
    loop {
        let (entities, _) = state
            .engine
            .records(&account.principal, ENTITIES, prefix.clone(), None, 100)
            .await?;
        if entities.is_empty() {
            break;
        }
        for (name, _) in entities {
            let identity = &name[prefix.len()..];
            remove_entity(&state, &account, &path, identity).await?;
        }
    }
    let (webhooks, _) = state
        .engine
        .records(
            &account.principal,
            WEBHOOKS,
            prefix.clone(),
            None,
            MAX_LISTED,
        )
        .await?;
    for (name, _) in webhooks {
        let key = RecordKey {
            namespace: WEBHOOKS,
            name: &name,
        };
        state.engine.remove_record(&account.principal, key).await?;
    }
    state
        .engine
        .remove_record(&account.principal, service_key(&path))
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

pub fn render_entity(
    base: &str,
    service_sid: &str,
    identity: &str,
    e: &EntityRecord,
    account: &str,
) -> Value {
    let url = format!("{base}/v2/Services/{service_sid}/Entities/{identity}");
    json!({
        "sid": e.sid,
        "identity": identity,
        "account_sid": account,
        "service_sid": service_sid,
        "date_created": date(e.created_at),
        "date_updated": date(e.updated_at),
        "url": url,
        "links": {
            "factors": format!("{url}/Factors"),
            "challenges": format!("{url}/Challenges"),
        },
    })
}

/// `POST /v2/Services/{VA}/Entities`: 201; an identity that exists is 409 60360.
pub async fn create_entity(
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
    state: State,
) -> Reply {
    let account = authenticate(&req, &state)?;
    service(&state, &account, &path).await?;
    let form = form_body(&req, payload, &state).await?;
    let identity = form.required("Identity")?.to_string();
    check_identity(&identity)?;
    let (record, created) = entity_or_new(&state, &account, &path, &identity).await?;
    if !created {
        return Err(TwilioError::new(
            409,
            60360,
            "An entity with this Identity exists",
        ));
    }
    let body = render_entity(
        &origin(&req, &state),
        &path,
        &identity,
        &record,
        &account.sid,
    );
    Ok(HttpResponse::Created().json(body))
}

/// `GET /v2/Services/{VA}/Entities/{Identity}`
pub async fn fetch_entity(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    state: State,
) -> Reply {
    let account = authenticate(&req, &state)?;
    let (service_sid, identity) = path.into_inner();
    service(&state, &account, &service_sid).await?;
    let record = entity(&state, &account, &service_sid, &identity)
        .await?
        .ok_or_else(TwilioError::not_found)?;
    let body = render_entity(
        &origin(&req, &state),
        &service_sid,
        &identity,
        &record,
        &account.sid,
    );
    Ok(HttpResponse::Ok().json(body))
}

/// `DELETE /v2/Services/{VA}/Entities/{Identity}`: the entity and its factors.
pub async fn delete_entity(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    state: State,
) -> Reply {
    let account = authenticate(&req, &state)?;
    let (service_sid, identity) = path.into_inner();
    service(&state, &account, &service_sid).await?;
    entity(&state, &account, &service_sid, &identity)
        .await?
        .ok_or_else(TwilioError::not_found)?;
    remove_entity(&state, &account, &service_sid, &identity).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// `GET /v2/Services/{VA}/Entities`
pub async fn list_entities(req: HttpRequest, path: web::Path<String>, state: State) -> Reply {
    let account = authenticate(&req, &state)?;
    service(&state, &account, &path).await?;
    let query = query(&req);
    let page = page_of(&query)?;
    let prefix = format!("{path}/");
    let (records, _) = state
        .engine
        .records(
            &account.principal,
            ENTITIES,
            prefix.clone(),
            None,
            MAX_LISTED,
        )
        .await?;
    let base = origin(&req, &state);
    let mut all: Vec<(i64, String, Value)> = records
        .into_iter()
        .filter_map(|(name, v)| {
            let e: EntityRecord = serde_json::from_value(v).ok()?;
            let identity = name[prefix.len()..].to_string();
            let body = render_entity(&base, &path, &identity, &e, &account.sid);
            Some((e.created_at, identity, body))
        })
        .collect();
    all.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
    let items = all.into_iter().map(|(_, _, v)| v).collect();
    let url = format!("{base}/v2/Services/{path}/Entities");
    Ok(HttpResponse::Ok().json(paged(items, "entities", &url, &[], page)))
}

/// `POST /v2/Services/{VA}/AccessTokens`: an enrolment token for a push device
/// (`Identity`, `FactorType=push`, `FactorFriendlyName`, `Ttl` 60–300, default 60): an
/// HS256 JWT under a key derived from the tenant's webhook secret, naming the service,
/// entity and factor name it grants.
pub async fn access_token(
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
    state: State,
) -> Reply {
    let account = authenticate(&req, &state)?;
    service(&state, &account, &path).await?;
    let form = form_body(&req, payload, &state).await?;
    let identity = form.required("Identity")?.to_string();
    check_identity(&identity)?;
    if form.required("FactorType")? != "push" {
        return Err(TwilioError::invalid("FactorType must be push"));
    }
    let friendly = text(&form, "FactorFriendlyName", 64)?;
    let ttl = form.number("Ttl", 60..=300)?.unwrap_or(60);
    let now = state.engine.now_ms();
    let iat = now.div_euclid(1000);
    let token_sid = sid::random("YK");
    let claims = json!({
        "jti": token_sid,
        "iss": account.sid,
        "sub": path.as_str(),
        "iat": iat,
        "exp": iat + ttl as i64,
        "grants": {"verify": {"identity": identity, "factor": "push", "factor_friendly_name": friendly}},
    });
    let secret = state.engine.webhook_secret(&account.principal)?;
    let key = {
        use hmac::{Hmac, Mac};
        let mut mac =
            <Hmac<sha2::Sha256>>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
        mac.update(b"twilio.access_token");
        mac.finalize().into_bytes()
    };
    let token = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(&key),
    )
    .map_err(|_| TwilioError::new(500, 20500, "the token could not be signed"))?;
    let base = origin(&req, &state);
    Ok(HttpResponse::Created().json(json!({
        "sid": token_sid,
        "account_sid": account.sid,
        "service_sid": path.as_str(),
        "entity_identity": identity,
        "factor_type": "push",
        "factor_friendly_name": friendly,
        "token": token,
        "url": format!("{base}/v2/Services/{}/AccessTokens/{token_sid}", path.as_str()),
        "ttl": ttl,
        "date_created": date(now),
    })))
}

pub const EVENT_TYPES: [&str; 6] = [
    "*",
    "factor.created",
    "factor.verified",
    "factor.deleted",
    "challenge.approved",
    "challenge.denied",
];

fn render_webhook(base: &str, service_sid: &str, w: &WebhookRecord, account: &str) -> Value {
    json!({
        "sid": w.sid,
        "service_sid": service_sid,
        "account_sid": account,
        "friendly_name": w.friendly_name,
        "event_types": w.event_types,
        "status": w.status,
        "version": w.version,
        "webhook_url": w.webhook_url,
        "webhook_method": "POST",
        "date_created": date(w.created_at),
        "date_updated": date(w.updated_at),
        "url": format!("{base}/v2/Services/{service_sid}/Webhooks/{}", w.sid),
    })
}

/// Applies a webhook create or update form to `w`.
fn apply_webhook(form: &Form, w: &mut WebhookRecord, state: &State) -> Result<(), TwilioError> {
    if let Some(name) = text(form, "FriendlyName", 64)? {
        w.friendly_name = name;
    }
    let events = form.all("EventTypes");
    if !events.is_empty() {
        if let Some(bad) = events.iter().find(|e| !EVENT_TYPES.contains(e)) {
            return Err(TwilioError::invalid(format!(
                "EventTypes: {bad} is not one of {}",
                EVENT_TYPES.join(", ")
            )));
        }
        w.event_types = events.iter().map(|e| e.to_string()).collect();
    }
    if let Some(url) = form.get("WebhookUrl")? {
        state
            .engine
            .check_callback_url("WebhookUrl", url)
            .map_err(|e| TwilioError::invalid(e.to_string()))?;
        w.webhook_url = url.to_string();
    }
    match form.get("Status")? {
        None => {}
        Some(s @ ("enabled" | "disabled")) => w.status = s.to_string(),
        Some(_) => return Err(TwilioError::invalid("Status must be enabled or disabled")),
    }
    match form.get("Version")? {
        None => {}
        Some(v @ ("v1" | "v2")) => w.version = v.to_string(),
        Some(_) => return Err(TwilioError::invalid("Version must be v1 or v2")),
    }
    Ok(())
}

fn webhook_name(service_sid: &str, webhook_sid: &str) -> String {
    format!("{service_sid}/{webhook_sid}")
}

/// `POST /v2/Services/{VA}/Webhooks`: needs the account's plain `auth_token`, which
/// signs the deliveries.
pub async fn create_webhook(
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
    state: State,
) -> Reply {
    let account = authenticate(&req, &state)?;
    service(&state, &account, &path).await?;
    if account.auth_token.is_none() {
        return Err(TwilioError::invalid(
            "webhooks are signed with the account's auth token: configure auth_token, not auth_token_sha256",
        ));
    }
    let form = form_body(&req, payload, &state).await?;
    form.required("FriendlyName")?;
    form.required("WebhookUrl")?;
    if form.all("EventTypes").is_empty() {
        return Err(TwilioError::invalid(
            "Missing required parameter EventTypes",
        ));
    }
    let now = state.engine.now_ms();
    let mut record = WebhookRecord {
        sid: sid::random(sid::WEBHOOK),
        friendly_name: String::new(),
        event_types: Vec::new(),
        webhook_url: String::new(),
        status: "enabled".into(),
        version: "v2".into(),
        created_at: now,
        updated_at: now,
    };
    apply_webhook(&form, &mut record, &state)?;
    let name = webhook_name(&path, &record.sid);
    let key = RecordKey {
        namespace: WEBHOOKS,
        name: &name,
    };
    let document = serde_json::to_value(&record).expect("a record encodes");
    state
        .engine
        .insert_record(&account.principal, key, document)
        .await?;
    Ok(HttpResponse::Created().json(render_webhook(
        &origin(&req, &state),
        &path,
        &record,
        &account.sid,
    )))
}

async fn webhook(
    state: &State,
    account: &Account,
    service_sid: &str,
    webhook_sid: &str,
) -> Result<WebhookRecord, TwilioError> {
    service(state, account, service_sid).await?;
    if sid::decode(sid::WEBHOOK, webhook_sid).is_none() {
        return Err(TwilioError::not_found());
    }
    let name = webhook_name(service_sid, webhook_sid);
    let key = RecordKey {
        namespace: WEBHOOKS,
        name: &name,
    };
    state
        .engine
        .record(&account.principal, key)
        .await?
        .and_then(|v| serde_json::from_value(v).ok())
        .ok_or_else(TwilioError::not_found)
}

/// `GET /v2/Services/{VA}/Webhooks/{YW}`
pub async fn fetch_webhook(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    state: State,
) -> Reply {
    let account = authenticate(&req, &state)?;
    let (service_sid, webhook_sid) = path.into_inner();
    let record = webhook(&state, &account, &service_sid, &webhook_sid).await?;
    Ok(HttpResponse::Ok().json(render_webhook(
        &origin(&req, &state),
        &service_sid,
        &record,
        &account.sid,
    )))
}

/// `POST /v2/Services/{VA}/Webhooks/{YW}`
pub async fn update_webhook(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    payload: web::Payload,
    state: State,
) -> Reply {
    let account = authenticate(&req, &state)?;
    let (service_sid, webhook_sid) = path.into_inner();
    let mut record = webhook(&state, &account, &service_sid, &webhook_sid).await?;
    let form = form_body(&req, payload, &state).await?;
    apply_webhook(&form, &mut record, &state)?;
    record.updated_at = state.engine.now_ms();
    let name = webhook_name(&service_sid, &webhook_sid);
    let key = RecordKey {
        namespace: WEBHOOKS,
        name: &name,
    };
    let document = serde_json::to_value(&record).expect("a record encodes");
    state
        .engine
        .update_record(&account.principal, key, move |_| Ok(document.clone()))
        .await?
        .ok_or_else(TwilioError::not_found)?;
    Ok(HttpResponse::Ok().json(render_webhook(
        &origin(&req, &state),
        &service_sid,
        &record,
        &account.sid,
    )))
}

/// `DELETE /v2/Services/{VA}/Webhooks/{YW}`
pub async fn delete_webhook(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    state: State,
) -> Reply {
    let account = authenticate(&req, &state)?;
    let (service_sid, webhook_sid) = path.into_inner();
    webhook(&state, &account, &service_sid, &webhook_sid).await?;
    let name = webhook_name(&service_sid, &webhook_sid);
    let key = RecordKey {
        namespace: WEBHOOKS,
        name: &name,
    };
    state.engine.remove_record(&account.principal, key).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// `GET /v2/Services/{VA}/Webhooks`
pub async fn list_webhooks(req: HttpRequest, path: web::Path<String>, state: State) -> Reply {
    let account = authenticate(&req, &state)?;
    service(&state, &account, &path).await?;
    let page = page_of(&query(&req))?;
    let (records, _) = state
        .engine
        .records(
            &account.principal,
            WEBHOOKS,
            format!("{path}/"),
            None,
            MAX_LISTED,
        )
        .await?;
    let base = origin(&req, &state);
    let mut all: Vec<(i64, String, Value)> = records
        .into_iter()
        .filter_map(|(_, v)| {
            let w: WebhookRecord = serde_json::from_value(v).ok()?;
            Some((
                w.created_at,
                w.sid.clone(),
                render_webhook(&base, &path, &w, &account.sid),
            ))
        })
        .collect();
    all.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
    let items = all.into_iter().map(|(_, _, v)| v).collect();
    let url = format!("{base}/v2/Services/{path}/Webhooks");
    Ok(HttpResponse::Ok().json(paged(items, "webhooks", &url, &[], page)))
}
