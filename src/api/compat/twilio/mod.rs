//! The Twilio Verify v2 face (`/v2/Services…`): what Twilio's own SDK calls, answered
//! from the one engine. The pieces: `form.rs` reads Twilio's form encoding, `sid.rs`
//! maps SIDs onto engine ids, `dto.rs` renders resources and pages, `errors.rs` the
//! error body; `services.rs`, `factors.rs` and `challenges.rs` are the handlers.
//!
//! How Twilio's model lands on the engine's (README.md "Twilio Verify"):
//! - an account (HTTP Basic `AccountSid:AuthToken`, `[[compat.twilio.accounts]]`) is a
//!   tenant, with every scope;
//! - a Service and an Entity are engine records of that tenant; an Entity is the engine
//!   user `twilio:<service SID>:<identity>`, so two services never share factors;
//! - a Factor is an engine factor of that user, a Challenge an engine challenge (`totp`
//!   or `push`) naming it; their SIDs are their engine ids in hex.

pub mod challenges;
pub mod dto;
pub mod errors;
pub mod factors;
pub mod form;
pub mod services;
pub mod sid;
pub mod webhooks;

use actix_web::http::header;
use actix_web::{web, HttpRequest};
use base64::Engine as _;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use self::dto::{EntityRecord, ServiceRecord};
use self::errors::TwilioError;
use self::form::Form;
use crate::api::State;
use crate::auth::{Principal, Scope, Scopes};
use crate::engine::records::RecordKey;
use crate::model::TenantId;

pub const SERVICES: &str = "twilio.service";
pub const ENTITIES: &str = "twilio.entity";
pub const FACTORS: &str = "twilio.factor";
pub const CHALLENGES: &str = "twilio.challenge";
pub const WEBHOOKS: &str = "twilio.webhook";

/// Default and largest page sizes of every list.
pub const DEFAULT_PAGE_SIZE: usize = 50;
pub const MAX_PAGE_SIZE: usize = 1000;
/// The most items a list walks to sort and page.
pub const MAX_LISTED: usize = 10_000;

/// The authenticated account: its tenant's principal and its SID.
pub struct Account {
    pub principal: Principal,
    pub sid: String,
    /// The plain auth token, when configured so (it signs the account's webhooks).
    pub auth_token: Option<crate::config::Secret>,
}

/// The caller's account from `Authorization: Basic`, or 401 20003. The token is
/// compared as SHA-256 digests in constant time, whichever way it was configured.
pub fn authenticate(req: &HttpRequest, state: &State) -> Result<Account, TwilioError> {
    let unauthenticated = TwilioError::unauthenticated;
    let value = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(unauthenticated)?;
    let encoded = value
        .strip_prefix("Basic ")
        .or_else(|| value.strip_prefix("basic "))
        .ok_or_else(unauthenticated)?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()
        .and_then(|d| String::from_utf8(d).ok())
        .ok_or_else(unauthenticated)?;
    let (user, password) = decoded.split_once(':').ok_or_else(unauthenticated)?;
    let given: [u8; 32] = Sha256::digest(password.as_bytes()).into();
    let account = configured(state, user).ok_or_else(unauthenticated)?;
    let expected: [u8; 32] = if account.auth_token.is_empty() {
        let mut out = [0u8; 32];
        hex::decode_to_slice(&account.auth_token_sha256, &mut out)
            .map_err(|_| unauthenticated())?;
        out
    } else {
        Sha256::digest(account.auth_token.expose().as_bytes()).into()
    };
    if !bool::from(given.ct_eq(&expected)) {
        tracing::debug!(account = %account.account_sid, "twilio credentials refused");
        return Err(unauthenticated());
    }
    account_of(account).ok_or_else(unauthenticated)
}

/// The configured account `sid`.
fn configured<'a>(state: &'a State, sid: &str) -> Option<&'a crate::config::TwilioAccount> {
    state
        .settings
        .compat
        .twilio
        .accounts
        .iter()
        .find(|a| a.account_sid == sid)
}

/// The principal of a configured account: its tenant, every scope.
fn account_of(account: &crate::config::TwilioAccount) -> Option<Account> {
    let tenant = TenantId::parse(&account.tenant)?;
    let mut scopes = Scopes::default();
    for scope in Scope::ALL {
        scopes.insert(scope);
    }
    Some(Account {
        principal: Principal {
            tenant,
            subject: Some(account.account_sid.as_str().into()),
            scopes,
        },
        sid: account.account_sid.clone(),
        auth_token: (!account.auth_token.is_empty()).then(|| account.auth_token.clone()),
    })
}

/// A push device calling its own routes with HTTP Basic `token:<JWT>`: the JWT signed
/// by its factor's key (ES256) with `iss` the account SID, `sub` the service SID and
/// `grants.verify_push` naming this service, entity and factor (as Twilio's device SDK
/// signs it). The owner of the path and the device, or 401 20003.
pub async fn device_owner(
    req: &HttpRequest,
    state: &State,
    service_sid: &str,
    identity: &str,
    factor_sid: &str,
) -> Result<(factors::Owner, crate::engine::devices::Device), TwilioError> {
    let unauthenticated = TwilioError::unauthenticated;
    let decoded = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|v| {
            base64::engine::general_purpose::STANDARD
                .decode(v.trim())
                .ok()
        })
        .and_then(|d| String::from_utf8(d).ok())
        .ok_or_else(unauthenticated)?;
    let jwt = decoded.strip_prefix("token:").ok_or_else(unauthenticated)?;
    // Unverified, to find the account and key; the key's signature is checked below.
    let claims: serde_json::Value = jwt
        .split('.')
        .nth(1)
        .and_then(|p| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(p)
                .ok()
        })
        .and_then(|p| serde_json::from_slice(&p).ok())
        .ok_or_else(unauthenticated)?;
    let iss = claims["iss"].as_str().ok_or_else(unauthenticated)?;
    let account = configured(state, iss)
        .and_then(account_of)
        .ok_or_else(unauthenticated)?;
    let grants = &claims["grants"]["verify_push"];
    let granted = claims["sub"] == service_sid
        && grants["service_sid"] == service_sid
        && grants["entity_sid"] == identity
        && grants["factor_sid"] == factor_sid;
    if !granted {
        return Err(unauthenticated());
    }
    let svc = service(state, &account, service_sid).await?;
    let found = entity(state, &account, service_sid, identity)
        .await?
        .ok_or_else(unauthenticated)?;
    let factor_id = sid::factor_id(factor_sid).ok_or_else(unauthenticated)?;
    let user = user_id(service_sid, identity);
    let (device, _) = state
        .engine
        .device_by_jwt(&account.principal, user.clone(), factor_id, jwt)
        .await
        .map_err(|e| match e {
            crate::engine::Error::FactorNotFound
            | crate::engine::Error::DeviceUnauthorized { .. } => unauthenticated(),
            other => other.into(),
        })?;
    let owner = factors::Owner {
        account,
        service_sid: service_sid.to_string(),
        identity: identity.to_string(),
        entity_sid: found.sid,
        user_id: user,
        service: svc,
    };
    Ok((owner, device))
}

/// The origin resources and pages are addressed under: `[server] public_base_url`
/// when the request came to that host, else the scheme and `Host` the request used (the
/// SDK follows page URLs verbatim, so they must reach this server as the caller does).
pub fn origin(req: &HttpRequest, state: &State) -> String {
    let info = req.connection_info();
    let base = state.settings.server.public_base_url.trim_end_matches('/');
    let host = base.split_once("://").map_or(base, |(_, rest)| rest);
    if host.eq_ignore_ascii_case(info.host()) {
        base.to_string()
    } else {
        format!("{}://{}", info.scheme(), info.host())
    }
}

/// The engine user an entity is: unique per service and identity.
pub fn user_id(service_sid: &str, identity: &str) -> String {
    format!("twilio:{service_sid}:{identity}")
}

/// An entity's identity: 1–64 of letters, digits, `-`, `_` (Twilio: dash-separated
/// alphanumerics, no PII).
pub fn check_identity(identity: &str) -> Result<(), TwilioError> {
    let ok = !identity.is_empty()
        && identity.len() <= 64
        && identity
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'));
    if ok {
        Ok(())
    } else {
        Err(TwilioError::invalid(
            "Identity must be 1 to 64 letters, digits, '-' or '_'",
        ))
    }
}

/// The account's service `sid`, or 404 20404 (absent, malformed, another account's).
pub async fn service(
    state: &State,
    account: &Account,
    sid: &str,
) -> Result<ServiceRecord, TwilioError> {
    if sid::decode(sid::SERVICE, sid).is_none() {
        return Err(TwilioError::not_found());
    }
    let key = RecordKey {
        namespace: SERVICES,
        name: sid,
    };
    let record = state
        .engine
        .record(&account.principal, key)
        .await?
        .ok_or_else(TwilioError::not_found)?;
    let service: ServiceRecord =
        serde_json::from_value(record).map_err(|_| TwilioError::new(500, 20500, "bad record"))?;
    if service.account_sid != account.sid {
        return Err(TwilioError::not_found());
    }
    Ok(service)
}

fn entity_name(service_sid: &str, identity: &str) -> String {
    format!("{service_sid}/{identity}")
}

/// The service's entity `identity`, if it exists.
pub async fn entity(
    state: &State,
    account: &Account,
    service_sid: &str,
    identity: &str,
) -> Result<Option<EntityRecord>, TwilioError> {
    check_identity(identity).map_err(|_| TwilioError::not_found())?;
    let name = entity_name(service_sid, identity);
    let key = RecordKey {
        namespace: ENTITIES,
        name: &name,
    };
    Ok(state
        .engine
        .record(&account.principal, key)
        .await?
        .and_then(|v| serde_json::from_value(v).ok()))
}

/// The service's entity `identity`, created if absent (a new factor creates its entity).
pub async fn entity_or_new(
    state: &State,
    account: &Account,
    service_sid: &str,
    identity: &str,
) -> Result<(EntityRecord, bool), TwilioError> {
    check_identity(identity)?;
    if let Some(found) = entity(state, account, service_sid, identity).await? {
        return Ok((found, false));
    }
    let now = state.engine.now_ms();
    let record = EntityRecord {
        sid: sid::random(sid::ENTITY),
        created_at: now,
        updated_at: now,
    };
    let name = entity_name(service_sid, identity);
    let key = RecordKey {
        namespace: ENTITIES,
        name: &name,
    };
    let document = serde_json::to_value(&record).expect("a record encodes");
    if state
        .engine
        .insert_record(&account.principal, key, document)
        .await?
    {
        return Ok((record, true));
    }
    // Created meanwhile by another request: that one is the entity.
    let found = entity(state, account, service_sid, identity).await?;
    found.map(|e| (e, false)).ok_or_else(TwilioError::not_found)
}

/// The form body of a POST (at most `server.body_limit_bytes`).
pub async fn form_body(
    req: &HttpRequest,
    payload: web::Payload,
    state: &State,
) -> Result<Form, TwilioError> {
    let body = crate::api::read_body(req, payload, state.settings.server.body_limit_bytes).await?;
    Ok(Form::parse(&body))
}

/// The query string's parameters.
pub fn query(req: &HttpRequest) -> Form {
    Form::parse(req.query_string().as_bytes())
}

/// A list's page from the query: `PageSize` (1..=1000, default 50) and `PageToken`
/// (`PT<offset>`, as this face writes it), as (offset, size, page number).
pub fn page_of(query: &Form) -> Result<(usize, usize, u64), TwilioError> {
    let size = query
        .number("PageSize", 1..=MAX_PAGE_SIZE as u64)?
        .map_or(DEFAULT_PAGE_SIZE, |n| n as usize);
    let page = query.number("Page", 0..=u64::from(u32::MAX))?.unwrap_or(0);
    let offset = match query.get("PageToken")? {
        None => 0,
        Some(token) => token
            .strip_prefix("PT")
            .and_then(|n| n.parse::<usize>().ok())
            .filter(|n| *n <= MAX_LISTED)
            .ok_or_else(|| TwilioError::invalid("PageToken is not valid"))?,
    };
    Ok((offset, size, page))
}

/// The page `[offset, offset + size)` of `all`, rendered in the envelope.
pub fn paged(
    all: Vec<serde_json::Value>,
    key: &str,
    url: &str,
    filters: &[(&str, String)],
    (offset, size, page): (usize, usize, u64),
) -> serde_json::Value {
    let total = all.len();
    let items: Vec<_> = all.into_iter().skip(offset).take(size).collect();
    let next = (offset + size < total).then(|| format!("PT{}", offset + size));
    let previous = (offset > 0).then(|| format!("PT{}", offset.saturating_sub(size)));
    dto::Envelope {
        key,
        url,
        filters,
        page,
        page_size: size,
        next,
        previous,
    }
    .render(items)
}

/// 404 20404 for a path this face does not serve.
async fn unknown() -> Result<actix_web::HttpResponse, TwilioError> {
    Err(TwilioError::not_found())
}

/// 405 20004 for a method a path does not take.
async fn method_not_allowed() -> Result<actix_web::HttpResponse, TwilioError> {
    Err(TwilioError::new(405, 20004, "Method not allowed"))
}

/// A resource that answers Twilio's 405 to the methods it does not route.
fn resource(path: impl Into<String>) -> actix_web::Resource {
    web::resource(path.into()).default_service(web::to(method_not_allowed))
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    let entity = "/Services/{service}/Entities/{identity}";
    cfg.service(
        web::scope("/v2")
            .service(
                resource("/Services")
                    .route(web::post().to(services::create))
                    .route(web::get().to(services::list)),
            )
            .service(
                resource("/Services/{service}")
                    .route(web::get().to(services::fetch))
                    .route(web::post().to(services::update))
                    .route(web::delete().to(services::delete)),
            )
            .service(
                resource("/Services/{service}/Entities")
                    .route(web::post().to(services::create_entity))
                    .route(web::get().to(services::list_entities)),
            )
            .service(
                resource(entity)
                    .route(web::get().to(services::fetch_entity))
                    .route(web::delete().to(services::delete_entity)),
            )
            .service(
                resource(format!("{entity}/Factors"))
                    .route(web::post().to(factors::create))
                    .route(web::get().to(factors::list)),
            )
            .service(
                resource(format!("{entity}/Factors/{{factor}}"))
                    .route(web::get().to(factors::fetch))
                    .route(web::post().to(factors::update))
                    .route(web::delete().to(factors::delete)),
            )
            .service(
                resource(format!("{entity}/Factors/{{factor}}/Challenges"))
                    .route(web::get().to(challenges::device_list)),
            )
            .service(
                resource(format!(
                    "{entity}/Factors/{{factor}}/Challenges/{{challenge}}"
                ))
                .route(web::get().to(challenges::device_fetch))
                .route(web::post().to(challenges::device_update)),
            )
            .service(
                resource(format!("{entity}/Challenges"))
                    .route(web::post().to(challenges::create))
                    .route(web::get().to(challenges::list)),
            )
            .service(
                resource(format!("{entity}/Challenges/{{challenge}}"))
                    .route(web::get().to(challenges::fetch))
                    .route(web::post().to(challenges::update)),
            )
            .service(
                resource(format!("{entity}/Challenges/{{challenge}}/Notifications"))
                    .route(web::post().to(challenges::notify)),
            )
            .service(
                resource("/Services/{service}/AccessTokens")
                    .route(web::post().to(services::access_token)),
            )
            .service(
                resource("/Services/{service}/Webhooks")
                    .route(web::post().to(services::create_webhook))
                    .route(web::get().to(services::list_webhooks)),
            )
            .service(
                resource("/Services/{service}/Webhooks/{webhook}")
                    .route(web::get().to(services::fetch_webhook))
                    .route(web::post().to(services::update_webhook))
                    .route(web::delete().to(services::delete_webhook)),
            )
            .default_service(web::to(unknown)),
    );
}
