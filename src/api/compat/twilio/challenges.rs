//! Challenges (`…/Entities/{Identity}/Challenges`): engine challenges of the entity's
//! user, `totp` or `push` after the factor they name. Status: `issued` is `pending`,
//! `verified` and `completed` are `approved`, `declined` is `denied`, and `expired`,
//! `cancelled` and `failed` are `expired` (Twilio's enum is closed).
//!
//! A TOTP challenge is answered with `AuthPayload` = a code, at create or by update (a
//! wrong code is 200/201 still `pending`, and costs an attempt); a code's time step is
//! used once, as everywhere. A push challenge is answered by update with `AuthPayload` =
//! `{"signature", "status"}`: the device's ECDSA P-256 signature (base64 of DER) over
//! Twilio's concatenation ([`signing_strings`]) and its decision. The signature is
//! checked by the engine's device path (`Engine::device_answer`) with this face's
//! signing strings.

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Value};

use super::dto::{date, parse_date};
use super::errors::TwilioError;
use super::factors::{find, owner, signature, Owner};
use super::form::{string_map, Form};
use super::{form_body, origin, page_of, paged, query, sid, CHALLENGES, MAX_LISTED};
use crate::api::State;
use crate::challenge::kinds::push::Decision;
use crate::challenge::kinds::token::{Attempt, Signed};
use crate::engine::devices::Device;
use crate::engine::records::RecordKey;
use crate::engine::{CreateRequest, Error, View};
use crate::factors::{FactorData, FactorType};
use crate::model::{ChallengeType, DetailField, Details, PolicyAlias, State as Native};
use crate::store::ListFilter;

type Reply = Result<HttpResponse, TwilioError>;

pub const MAX_MESSAGE: usize = 256;
pub const MAX_FIELDS: usize = 20;
pub const MAX_LABEL: usize = 36;
pub const MAX_VALUE: usize = 128;
pub const MAX_HIDDEN: usize = 1024;
pub const MAX_METADATA: usize = 1024;
pub const MAX_PUSH_PAYLOAD: usize = 5456;
/// Default and largest lifetime of a challenge (Twilio: 5 minutes, at most 60).
pub const DEFAULT_TTL_SECONDS: u64 = 300;
pub const MAX_TTL_SECONDS: i64 = 3600;
/// The native policies a tenant may keep for the face's challenges (see README.md,
/// "Twilio Verify"): a create of that type uses it when it exists.
pub const TWILIO_TOTP_POLICY: &str = "twilio-totp";
pub const TWILIO_PUSH_POLICY: &str = "twilio-push";

/// Twilio's status of a native state.
pub fn status(state: Native) -> &'static str {
    match state {
        Native::Pending | Native::Issued => "pending",
        Native::Verified | Native::Completed => "approved",
        Native::Declined => "denied",
        Native::Expired | Native::Cancelled | Native::Failed => "expired",
    }
}

/// The native states a Twilio status filter names.
fn states(status: &str) -> Option<&'static [Native]> {
    Some(match status {
        "pending" => &[Native::Issued],
        "approved" => &[Native::Verified, Native::Completed],
        "denied" => &[Native::Declined],
        "expired" => &[Native::Expired, Native::Cancelled, Native::Failed],
        _ => return None,
    })
}

/// `details` as served: `{"fields": […], "message": …}` (and `date` with the service's
/// `Push.IncludeDate`), keys in one fixed order.
pub fn details(view: &View, include_date: bool) -> Value {
    let native: Details = view
        .details()
        .and_then(|d| serde_json::from_str(d).ok())
        .unwrap_or(Details {
            message: None,
            fields: Vec::new(),
        });
    let mut out = serde_json::Map::new();
    if include_date {
        out.insert("date".into(), json!(date(view.created_at)));
    }
    out.insert(
        "fields".into(),
        Value::Array(
            native
                .fields
                .iter()
                .map(|f| json!({"label": f.label, "value": f.value}))
                .collect(),
        ),
    );
    out.insert("message".into(), json!(native.message.unwrap_or_default()));
    Value::Object(out)
}

/// `hidden_details` as served: the object given at create, `{}` without one.
pub fn hidden_details(view: &View) -> Value {
    view.hidden_details()
        .and_then(|h| serde_json::from_str(h).ok())
        .unwrap_or_else(|| json!({}))
}

/// JSON text as Python's `json.dumps` writes it (`ensure_ascii`), with its default
/// separators (`", "`, `": "`) or compact ones: how a device that re-serialises what
/// it parsed may render the same object.
pub fn python_json(value: &Value, compact: bool) -> String {
    let (item, key) = if compact { (",", ":") } else { (", ", ": ") };
    fn string(s: &str, out: &mut String) {
        out.push('"');
        for c in s.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                '\u{8}' => out.push_str("\\b"),
                '\u{c}' => out.push_str("\\f"),
                c if (c as u32) < 0x20 || (c as u32) > 0x7e => {
                    let mut buf = [0u16; 2];
                    for unit in c.encode_utf16(&mut buf) {
                        out.push_str(&format!("\\u{unit:04x}"));
                    }
                }
                c => out.push(c),
            }
        }
        out.push('"');
    }
    fn write(v: &Value, out: &mut String, item: &str, key: &str) {
        match v {
            Value::Object(map) => {
                out.push('{');
                for (i, (k, v)) in map.iter().enumerate() {
                    if i > 0 {
                        out.push_str(item);
                    }
                    string(k, out);
                    out.push_str(key);
                    write(v, out, item, key);
                }
                out.push('}');
            }
            Value::Array(list) => {
                out.push('[');
                for (i, v) in list.iter().enumerate() {
                    if i > 0 {
                        out.push_str(item);
                    }
                    write(v, out, item, key);
                }
                out.push(']');
            }
            Value::String(s) => string(s, out),
            other => out.push_str(&other.to_string()),
        }
    }
    let mut out = String::new();
    write(value, &mut out, item, key);
    out
}

/// What a device signs to answer a push challenge (the spec's "Push answer"): the
/// concatenation, without separators, of the account, service, entity, factor and
/// challenge SIDs, `date_created`, `date_updated`, the status (`pending`), `details`
/// and `hidden_details` as served. One string per way a device may have rendered again
/// what it parsed: the dates as served or as Python prints an aware `datetime`
/// (`isoformat()`, `str()`), the objects as served or as Python's `json.dumps` writes
/// them (spaced or compact). Each is the same content; only its spelling differs.
pub fn signing_strings(owner: &Owner, view: &View) -> Vec<String> {
    let factor = view.factor().map(|f| sid::factor(&f)).unwrap_or_default();
    let sids = format!(
        "{}{}{}{}{}",
        owner.account.sid,
        owner.service_sid,
        owner.entity_sid,
        factor,
        sid::challenge(&view.id),
    );
    let (created, updated) = (date(view.created_at), date(view.life.updated_at));
    let python = |served: &str, separator: char| {
        let base = served
            .trim_end_matches('Z')
            .replacen('T', &separator.to_string(), 1);
        format!("{base}+00:00")
    };
    let dates = [
        (created.clone(), updated.clone()),
        (python(&created, 'T'), python(&updated, 'T')),
        (python(&created, ' '), python(&updated, ' ')),
    ];
    let d = details(view, owner.service.push_include_date);
    let h = hidden_details(view);
    let objects = [
        (d.to_string(), h.to_string()),
        (python_json(&d, false), python_json(&h, false)),
        (python_json(&d, true), python_json(&h, true)),
    ];
    let pending = status(Native::Issued);
    let mut out = Vec::with_capacity(9);
    for (c, u) in &dates {
        for (d, h) in &objects {
            let text = format!("{sids}{c}{u}{pending}{d}{h}");
            if !out.contains(&text) {
                out.push(text);
            }
        }
    }
    out
}

fn metadata_key(sid: &str) -> RecordKey<'_> {
    RecordKey {
        namespace: CHALLENGES,
        name: sid,
    }
}

async fn metadata(state: &State, owner: &Owner, challenge_sid: &str) -> Result<Value, TwilioError> {
    Ok(state
        .engine
        .record(&owner.account.principal, metadata_key(challenge_sid))
        .await?
        .unwrap_or_else(|| json!({})))
}

pub fn render(base: &str, owner: &Owner, view: &View, metadata: Value) -> Value {
    let sid = sid::challenge(&view.id);
    let factor_type = match view.kind {
        ChallengeType::Push => "push",
        _ => "totp",
    };
    let url = format!(
        "{base}/v2/Services/{}/Entities/{}/Challenges/{sid}",
        owner.service_sid, owner.identity
    );
    let responded = matches!(
        view.life.state,
        Native::Verified | Native::Completed | Native::Declined
    );
    json!({
        "sid": sid,
        "account_sid": owner.account.sid,
        "service_sid": owner.service_sid,
        "entity_sid": owner.entity_sid,
        "identity": owner.identity,
        "factor_sid": view.factor().map(|f| sid::factor(&f)),
        "date_created": date(view.created_at),
        "date_updated": date(view.life.updated_at),
        "date_responded": responded.then(|| date(view.life.answered_at.unwrap_or(view.life.updated_at))),
        "expiration_date": date(view.life.expires_at),
        "status": status(view.life.state),
        "responded_reason": "none",
        "details": details(view, owner.service.push_include_date),
        "hidden_details": hidden_details(view),
        "metadata": metadata,
        "factor_type": factor_type,
        "url": url,
        "links": {"notifications": format!("{url}/Notifications")},
    })
}

/// `Details.Message` and `Details.Fields` (each a JSON `{"label", "value"}`), within
/// Twilio's bounds.
fn parse_details(form: &Form) -> Result<Option<Details>, TwilioError> {
    let message = form.get("Details.Message")?;
    if message.is_some_and(|m| m.chars().count() > MAX_MESSAGE) {
        return Err(TwilioError::invalid(format!(
            "Details.Message is longer than {MAX_MESSAGE} characters"
        )));
    }
    let raw = form.all("Details.Fields");
    if raw.len() > MAX_FIELDS {
        return Err(TwilioError::invalid(format!(
            "Details.Fields holds more than {MAX_FIELDS} fields"
        )));
    }
    let mut fields = Vec::with_capacity(raw.len());
    for (i, f) in raw.iter().enumerate() {
        let map = string_map("Details.Fields", f)?;
        let (Some(Value::String(label)), Some(Value::String(value)), 2) =
            (map.get("label"), map.get("value"), map.len())
        else {
            return Err(TwilioError::invalid(format!(
                "Details.Fields[{i}] must be a JSON object {{\"label\", \"value\"}}"
            )));
        };
        if label.chars().count() > MAX_LABEL || value.chars().count() > MAX_VALUE {
            return Err(TwilioError::invalid(format!(
                "Details.Fields[{i}]: label is at most {MAX_LABEL} and value at most {MAX_VALUE} characters"
            )));
        }
        fields.push(DetailField {
            label: label.clone(),
            value: value.clone(),
        });
    }
    if message.is_none() && fields.is_empty() {
        return Ok(None);
    }
    Ok(Some(Details {
        message: message.map(str::to_string),
        fields,
    }))
}

/// A TOTP code as `AuthPayload`: 3–8 characters.
fn code(payload: &str) -> Result<String, TwilioError> {
    if (3..=8).contains(&payload.chars().count()) {
        Ok(payload.to_string())
    } else {
        Err(TwilioError::invalid(
            "AuthPayload must be 3 to 8 characters",
        ))
    }
}

/// Answers a TOTP challenge with a code: the challenge after it (a wrong code leaves it
/// `pending`).
async fn answer_code(
    state: &State,
    owner: &Owner,
    view: View,
    code: String,
) -> Result<View, TwilioError> {
    let attempt = Attempt {
        token: None,
        code: Some(code),
        actor_id: None,
        allowed: true,
        on_behalf: true,
        device: None,
        credential: None,
        method: None,
    };
    let principal = &owner.account.principal;
    match state
        .engine
        .answer(Some(principal), &view.id, attempt)
        .await
    {
        Ok(answered) => Ok(answered),
        Err(Error::WrongAnswer { .. }) => Ok(state.engine.get(principal, &view.id).await?),
        Err(e) => Err(e.into()),
    }
}

/// Tells the service's webhooks that a challenge was answered (approved or denied).
async fn answered(state: &State, owner: &Owner, view: &View) {
    let event = match view.life.state {
        Native::Verified | Native::Completed => "challenge.approved",
        Native::Declined => "challenge.denied",
        _ => return,
    };
    let factor_type = if view.kind == ChallengeType::Push {
        "push"
    } else {
        "totp"
    };
    let fields = [
        ("entity_identity", owner.identity.clone()),
        ("entity_sid", owner.entity_sid.clone()),
        (
            "factor_sid",
            view.factor().map(|f| sid::factor(&f)).unwrap_or_default(),
        ),
        ("factor_type", factor_type.to_string()),
        ("challenge_sid", sid::challenge(&view.id)),
        ("challenge_status", status(view.life.state).to_string()),
        (
            "challenge_details",
            details(view, owner.service.push_include_date).to_string(),
        ),
        ("challenge_hidden_details", hidden_details(view).to_string()),
        ("date_created", date(view.created_at)),
    ];
    super::webhooks::send(
        state,
        &owner.account,
        &owner.service_sid,
        event,
        *view.id.as_bytes(),
        &fields,
    )
    .await;
}

/// `POST …/Challenges`
pub async fn create(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    payload: web::Payload,
    state: State,
) -> Reply {
    let (service_sid, identity) = path.into_inner();
    let owner = owner(&req, &state, &service_sid, &identity).await?;
    let form = form_body(&req, payload, &state).await?;
    let factor_sid = form.required("FactorSid")?.to_string();
    let details = parse_details(&form)?;
    let hidden = form.string_map("HiddenDetails", MAX_HIDDEN)?;
    let now = state.engine.now_ms();
    let ttl = match form.get("ExpirationDate")? {
        None => DEFAULT_TTL_SECONDS,
        Some(raw) => {
            let at = parse_date("ExpirationDate", raw)?;
            // Whole seconds, rounded up: a date given to the second is never "now".
            let seconds = (at - now + 999).div_euclid(1000);
            if at <= now || seconds > MAX_TTL_SECONDS {
                return Err(TwilioError::invalid(
                    "ExpirationDate must be in the future and at most 60 minutes after creation",
                ));
            }
            seconds as u64
        }
    };
    let factor = find(&state, &owner, &factor_sid).await?;
    let auth_payload = form.get("AuthPayload")?.map(code).transpose()?;
    let kind = match factor.kind() {
        FactorType::Totp => ChallengeType::Totp,
        FactorType::Push => {
            if auth_payload.is_some() {
                return Err(TwilioError::invalid(
                    "AuthPayload at create is for totp factors; a push challenge is answered by its device",
                ));
            }
            if details.as_ref().and_then(|d| d.message.as_ref()).is_none() {
                return Err(TwilioError::invalid(
                    "Missing required parameter Details.Message",
                ));
            }
            ChallengeType::Push
        }
        FactorType::Webauthn => return Err(TwilioError::invalid("unsupported factor type")),
    };
    // The tenant's native policy for the face's challenges of this type, if it has one:
    // its callback_url, TTL bound and retention then apply as to any native create.
    let alias = match kind {
        ChallengeType::Push => TWILIO_PUSH_POLICY,
        _ => TWILIO_TOTP_POLICY,
    };
    let policy = match PolicyAlias::parse(alias) {
        Some(parsed) => match state.engine.policy(&owner.account.principal, parsed).await {
            Ok(_) => Some(alias.to_string()),
            Err(Error::PolicyNotFound) => None,
            Err(e) => return Err(e.into()),
        },
        None => None,
    };
    let request = CreateRequest {
        kind: Some(kind),
        policy,
        user_id: owner.user_id.clone(),
        ttl_seconds: Some(ttl),
        details,
        hidden_details: hidden,
        factor_id: Some(factor.id.to_string()),
        ..CreateRequest::default()
    };
    let created = state
        .engine
        .create(&owner.account.principal, request)
        .await?;
    let mut view = created.view;
    if let Some(code) = auth_payload {
        view = answer_code(&state, &owner, view, code).await?;
        answered(&state, &owner, &view).await;
    }
    let body = render(&origin(&req, &state), &owner, &view, json!({}));
    Ok(HttpResponse::Created().json(body))
}

/// The entity's challenge `sid`, or 404 20404.
async fn challenge(state: &State, owner: &Owner, challenge_sid: &str) -> Result<View, TwilioError> {
    let id = sid::challenge_id(challenge_sid).ok_or_else(TwilioError::not_found)?;
    let view = state.engine.get(&owner.account.principal, &id).await?;
    if *view.user_id != *owner.user_id {
        return Err(TwilioError::not_found());
    }
    Ok(view)
}

/// `GET …/Challenges/{YC}`
pub async fn fetch(
    req: HttpRequest,
    path: web::Path<(String, String, String)>,
    state: State,
) -> Reply {
    let (service_sid, identity, challenge_sid) = path.into_inner();
    let owner = owner(&req, &state, &service_sid, &identity).await?;
    fetch_for(&req, &state, &owner, &challenge_sid, None).await
}

/// The challenge as its owner (or, with `device`, its factor's device) sees it.
async fn fetch_for(
    req: &HttpRequest,
    state: &State,
    owner: &Owner,
    challenge_sid: &str,
    device: Option<&Device>,
) -> Reply {
    let view = challenge(state, owner, challenge_sid).await?;
    if device.is_some_and(|d| view.factor() != Some(d.factor_id)) {
        return Err(TwilioError::not_found());
    }
    let metadata = metadata(state, owner, challenge_sid).await?;
    Ok(HttpResponse::Ok().json(render(&origin(req, state), owner, &view, metadata)))
}

/// `POST …/Challenges/{YC}`: the answer (`AuthPayload`) and `Metadata`.
pub async fn update(
    req: HttpRequest,
    path: web::Path<(String, String, String)>,
    payload: web::Payload,
    state: State,
) -> Reply {
    let (service_sid, identity, challenge_sid) = path.into_inner();
    let owner = owner(&req, &state, &service_sid, &identity).await?;
    update_for(req, payload, state, owner, challenge_sid, None).await
}

/// Answers the challenge as its owner, or with `device` as its factor's device.
async fn update_for(
    req: HttpRequest,
    payload: web::Payload,
    state: State,
    owner: Owner,
    challenge_sid: String,
    device: Option<Device>,
) -> Reply {
    let view = challenge(&state, &owner, &challenge_sid).await?;
    if device
        .as_ref()
        .is_some_and(|d| view.factor() != Some(d.factor_id))
    {
        return Err(TwilioError::not_found());
    }
    let form = form_body(&req, payload, &state).await?;
    let metadata = form.string_map("Metadata", MAX_METADATA)?;
    let payload = form.get("AuthPayload")?;
    let before = view.life.state;
    let view = match (view.kind, payload) {
        (_, None) => view,
        (ChallengeType::Push, Some(raw)) => {
            if raw.len() > MAX_PUSH_PAYLOAD {
                return Err(TwilioError::invalid(format!(
                    "AuthPayload is longer than {MAX_PUSH_PAYLOAD} characters"
                )));
            }
            let answer: Value = serde_json::from_str(raw).map_err(|_| {
                TwilioError::invalid(
                    "AuthPayload must be a JSON object {\"signature\", \"status\"}",
                )
            })?;
            let decision = answer["status"]
                .as_str()
                .and_then(Decision::parse)
                .ok_or_else(|| {
                    TwilioError::invalid("AuthPayload status must be approved or denied")
                })?;
            let der = answer["signature"]
                .as_str()
                .and_then(signature)
                .ok_or_else(|| TwilioError::invalid("AuthPayload signature must be base64"))?;
            let factor = view.factor().ok_or_else(TwilioError::not_found)?;
            let device = match device {
                Some(device) => device,
                None => {
                    state
                        .engine
                        .device_of(&owner.account.principal, owner.user_id.clone(), factor)
                        .await?
                }
            };
            let signed = Signed::Exact {
                messages: signing_strings(&owner, &view),
                der,
            };
            state
                .engine
                .device_answer(&device, &view.id, decision, signed)
                .await?
        }
        (_, Some(_)) if device.is_some() => return Err(TwilioError::not_found()),
        (_, Some(raw)) => answer_code(&state, &owner, view, code(raw)?).await?,
    };
    if view.life.state != before {
        answered(&state, &owner, &view).await;
    }
    let metadata = match metadata {
        None => self::metadata(&state, &owner, &challenge_sid).await?,
        Some(map) => {
            let document = Value::Object(map);
            let key = metadata_key(&challenge_sid);
            let principal = &owner.account.principal;
            let replaced = state
                .engine
                .update_record(principal, key, {
                    let document = document.clone();
                    move |_| Ok(document.clone())
                })
                .await?;
            if replaced.is_none() {
                state
                    .engine
                    .insert_record(principal, key, document.clone())
                    .await?;
            }
            document
        }
    };
    Ok(HttpResponse::Ok().json(render(&origin(&req, &state), &owner, &view, metadata)))
}

/// `GET …/Challenges`: `FactorSid`, `Status`, `Order` (`asc` by creation, or `desc`).
pub async fn list(req: HttpRequest, path: web::Path<(String, String)>, state: State) -> Reply {
    let (service_sid, identity) = path.into_inner();
    let owner = owner(&req, &state, &service_sid, &identity).await?;
    list_for(&req, &state, &owner, None).await
}

/// The owner's challenges; with `device`, only those of its factor (and no
/// `FactorSid` filter in the page URLs: the path names the factor).
async fn list_for(
    req: &HttpRequest,
    state: &State,
    owner: &Owner,
    device: Option<&Device>,
) -> Reply {
    let (service_sid, identity) = (&owner.service_sid, &owner.identity);
    let query = query(req);
    let page = page_of(&query)?;
    let mut filters: Vec<(&str, String)> = Vec::new();
    let factor = match query.get("FactorSid")? {
        None => device.map(|d| d.factor_id),
        Some(_) if device.is_some() => {
            return Err(TwilioError::invalid("FactorSid is given by the path"))
        }
        Some(f) => {
            filters.push(("FactorSid", f.to_string()));
            Some(
                sid::factor_id(f)
                    .ok_or_else(|| TwilioError::invalid("FactorSid is not a factor SID"))?,
            )
        }
    };
    let wanted = match query.get("Status")? {
        None => None,
        Some(s) => {
            filters.push(("Status", s.to_string()));
            Some(states(s).ok_or_else(|| {
                TwilioError::invalid("Status must be pending, expired, approved or denied")
            })?)
        }
    };
    let descending = match query.get("Order")? {
        None => false,
        Some(o @ ("asc" | "desc")) => {
            filters.push(("Order", o.to_string()));
            o == "desc"
        }
        Some(_) => return Err(TwilioError::invalid("Order must be asc or desc")),
    };
    let filter = ListFilter {
        user_id: Some(owner.user_id.clone()),
        state: None,
        kind: None,
        factor,
    };
    let mut all = Vec::new();
    let mut after = None;
    loop {
        let (batch, next) = state
            .engine
            .list(&owner.account.principal, filter.clone(), after, 1000)
            .await?;
        all.extend(
            batch
                .into_iter()
                .filter(|c| wanted.is_none_or(|w| w.contains(&c.life.state))),
        );
        match next {
            Some(n) if all.len() < MAX_LISTED => after = Some(n),
            _ => break,
        }
    }
    all.sort_by_key(|c| (c.created_at, c.id));
    if descending {
        all.reverse();
    }
    let base = origin(req, state);
    let mut items = Vec::with_capacity(all.len());
    for c in all {
        let view: View = std::sync::Arc::new(c);
        let metadata = metadata(state, owner, &sid::challenge(&view.id)).await?;
        items.push(render(&base, owner, &view, metadata));
    }
    let url = match device {
        Some(d) => format!(
            "{base}/v2/Services/{service_sid}/Entities/{identity}/Factors/{}/Challenges",
            sid::factor(&d.factor_id)
        ),
        None => format!("{base}/v2/Services/{service_sid}/Entities/{identity}/Challenges"),
    };
    Ok(HttpResponse::Ok().json(paged(items, "challenges", &url, &filters, page)))
}

/// `GET …/Factors/{YF}/Challenges`: the device's own list (Basic `token:<JWT>`).
pub async fn device_list(
    req: HttpRequest,
    path: web::Path<(String, String, String)>,
    state: State,
) -> Reply {
    let (service_sid, identity, factor_sid) = path.into_inner();
    let (owner, device) =
        super::device_owner(&req, &state, &service_sid, &identity, &factor_sid).await?;
    list_for(&req, &state, &owner, Some(&device)).await
}

/// `GET …/Factors/{YF}/Challenges/{YC}`: as the device (Basic `token:<JWT>`).
pub async fn device_fetch(
    req: HttpRequest,
    path: web::Path<(String, String, String, String)>,
    state: State,
) -> Reply {
    let (service_sid, identity, factor_sid, challenge_sid) = path.into_inner();
    let (owner, device) =
        super::device_owner(&req, &state, &service_sid, &identity, &factor_sid).await?;
    fetch_for(&req, &state, &owner, &challenge_sid, Some(&device)).await
}

/// `POST …/Factors/{YF}/Challenges/{YC}`: the device's answer (Basic `token:<JWT>`).
pub async fn device_update(
    req: HttpRequest,
    path: web::Path<(String, String, String, String)>,
    payload: web::Payload,
    state: State,
) -> Reply {
    let (service_sid, identity, factor_sid, challenge_sid) = path.into_inner();
    let (owner, device) =
        super::device_owner(&req, &state, &service_sid, &identity, &factor_sid).await?;
    update_for(req, payload, state, owner, challenge_sid, Some(device)).await
}

/// `POST …/Challenges/{YC}/Notifications`: asks again for a pending push challenge's
/// notification (`Ttl` 0–300, default 300). Devices of this server poll, so nothing is
/// sent; the notification resource is returned as Twilio does.
pub async fn notify(
    req: HttpRequest,
    path: web::Path<(String, String, String)>,
    payload: web::Payload,
    state: State,
) -> Reply {
    let (service_sid, identity, challenge_sid) = path.into_inner();
    let owner = owner(&req, &state, &service_sid, &identity).await?;
    let view = challenge(&state, &owner, &challenge_sid).await?;
    let form = form_body(&req, payload, &state).await?;
    let ttl = form.number("Ttl", 0..=300)?.unwrap_or(300);
    if view.kind != ChallengeType::Push {
        return Err(TwilioError::invalid(
            "Notifications are sent for push challenges only",
        ));
    }
    if view.life.state != Native::Issued {
        return Err(TwilioError::from(Error::conflict(
            "already_answered",
            "not pending",
        )));
    }
    let push = state
        .engine
        .factor(
            &owner.account.principal,
            owner.user_id.clone(),
            view.factor().ok_or_else(TwilioError::not_found)?,
        )
        .await?;
    debug_assert!(matches!(push.data, FactorData::Push(_)));
    Ok(HttpResponse::Created().json(json!({
        "sid": sid::random(sid::NOTIFICATION),
        "account_sid": owner.account.sid,
        "service_sid": owner.service_sid,
        "entity_sid": owner.entity_sid,
        "identity": owner.identity,
        "challenge_sid": challenge_sid,
        "priority": "high",
        "ttl": ttl,
        "date_created": date(state.engine.now_ms()),
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner() -> Owner {
        use crate::auth::{Principal, Scopes};
        Owner {
            account: super::super::Account {
                principal: Principal {
                    tenant: crate::model::TenantId::parse("acme").unwrap(),
                    subject: None,
                    scopes: Scopes::default(),
                },
                sid: format!("AC{}", "1".repeat(32)),
                auth_token: None,
            },
            service_sid: format!("VA{}", "2".repeat(32)),
            identity: "user-1".into(),
            entity_sid: format!("YE{}", "3".repeat(32)),
            user_id: "twilio:VA:user-1".into(),
            service: super::super::dto::ServiceRecord {
                account_sid: String::new(),
                friendly_name: "Acme".into(),
                code_length: 6,
                totp_issuer: None,
                totp_time_step: 30,
                totp_code_length: 6,
                totp_skew: 1,
                push_include_date: false,
                push_apn_credential_sid: None,
                push_fcm_credential_sid: None,
                created_at: 0,
                updated_at: 0,
            },
        }
    }

    fn pending_push() -> View {
        use crate::model::{Challenge, ChallengeId, Extras, FactorId, KindData, Lifecycle};
        let created = 1_700_000_000_500;
        std::sync::Arc::new(Challenge {
            id: ChallengeId::from_bytes([4; 16]),
            tenant: crate::model::TenantId::parse("acme").unwrap(),
            kind: ChallengeType::Push,
            user_id: "twilio:VA:user-1".into(),
            actors: Vec::new(),
            created_at: created,
            life: Lifecycle::issued(created, created + 300_000, 5),
            retention_ms: 0,
            extras: Extras {
                details: Some(
                    r#"{"message":"Log in?","fields":[{"label":"IP","value":"é"}]}"#.into(),
                ),
                kind: KindData::Factor(FactorId::from_bytes([5; 16])),
                ..Extras::default()
            }
            .boxed(),
        })
    }

    #[test]
    fn a_pending_push_challenge_renders_in_twilios_shape() {
        let body = render("http://h", &owner(), &pending_push(), json!({}));
        assert_eq!(body["sid"], format!("YC{}", "04".repeat(16)));
        assert_eq!(body["factor_sid"], format!("YF{}", "05".repeat(16)));
        assert_eq!(body["status"], "pending");
        assert_eq!(body["date_created"], "2023-11-14T22:13:20Z");
        assert_eq!(body["expiration_date"], "2023-11-14T22:18:20Z");
        assert!(body["date_responded"].is_null(), "not responded yet");
        // The objects a device signs are never null, and keep one key order.
        assert_eq!(
            body["details"].to_string(),
            r#"{"fields":[{"label":"IP","value":"é"}],"message":"Log in?"}"#
        );
        assert_eq!(body["hidden_details"], json!({}));
        assert_eq!(body["metadata"], json!({}));
        assert_eq!(
            body["links"]["notifications"],
            format!(
                "http://h/v2/Services/VA{}/Entities/user-1/Challenges/YC{}/Notifications",
                "2".repeat(32),
                "04".repeat(16)
            )
        );
    }

    #[test]
    fn the_signing_strings_are_the_spec_concatenation_in_each_spelling() {
        let strings = signing_strings(&owner(), &pending_push());
        let head = format!(
            "AC{}VA{}YE{}YF{}YC{}",
            "1".repeat(32),
            "2".repeat(32),
            "3".repeat(32),
            "05".repeat(16),
            "04".repeat(16)
        );
        let served = format!(
            r#"{head}2023-11-14T22:13:20Z2023-11-14T22:13:20Zpending{{"fields":[{{"label":"IP","value":"é"}}],"message":"Log in?"}}{{}}"#
        );
        let python = format!(
            r#"{head}2023-11-14T22:13:20+00:002023-11-14T22:13:20+00:00pending{{"fields": [{{"label": "IP", "value": "\u00e9"}}], "message": "Log in?"}}{{}}"#
        );
        assert_eq!(strings[0], served);
        assert!(strings.contains(&python), "{strings:#?}");
        assert!(strings
            .iter()
            .any(|s| s.contains("2023-11-14 22:13:20+00:00")));
        assert_eq!(strings.len(), 9);
    }

    #[test]
    fn python_renderings_match_json_dumps() {
        let v = json!({"fields": [{"label": "é", "value": "1"}], "message": "Hi \"x\""});
        assert_eq!(
            python_json(&v, false),
            r#"{"fields": [{"label": "\u00e9", "value": "1"}], "message": "Hi \"x\""}"#
        );
        assert_eq!(
            python_json(&v, true),
            r#"{"fields":[{"label":"\u00e9","value":"1"}],"message":"Hi \"x\""}"#
        );
        assert_eq!(python_json(&json!({}), false), "{}");
    }

    #[test]
    fn every_native_state_has_a_twilio_status() {
        for (native, twilio) in [
            (Native::Issued, "pending"),
            (Native::Verified, "approved"),
            (Native::Completed, "approved"),
            (Native::Declined, "denied"),
            (Native::Expired, "expired"),
            (Native::Cancelled, "expired"),
            (Native::Failed, "expired"),
        ] {
            assert_eq!(status(native), twilio);
            assert!(states(twilio).unwrap().contains(&native));
        }
    }

    #[test]
    fn details_fields_are_parsed_within_twilios_bounds() {
        let form = Form::parse(
            b"Details.Message=Login&Details.Fields=%7B%22label%22%3A%22IP%22%2C%22value%22%3A%221.2.3.4%22%7D",
        );
        let d = parse_details(&form).unwrap().unwrap();
        assert_eq!(d.fields.len(), 1);
        let too_many: String = (0..21)
            .map(|_| "Details.Fields=%7B%22label%22%3A%22a%22%2C%22value%22%3A%22b%22%7D&")
            .collect();
        assert!(parse_details(&Form::parse(too_many.as_bytes())).is_err());
        let bad = Form::parse(b"Details.Fields=%7B%22label%22%3A%22a%22%7D");
        assert!(parse_details(&bad).is_err());
    }
}
