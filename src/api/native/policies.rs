//! `/api/v1/policies`: a tenant's named policies (spec/onewelcome-acs.md, "Management
//! API"), and the rules by which a create request takes its defaults and bounds from
//! one. Each handler authorizes and parses, makes one store call — a compare-and-swap
//! on the stored version — waits until it is durable, and maps the outcome. The
//! request and response shapes of policies live here too.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use super::dto::{check_range, check_text, rfc3339};
use crate::api::error::ErrorBody;
use crate::api::{
    etag, if_match, json_body, json_error, parse_json, query, require, ApiError, State,
};
use crate::auth::Scope;
use crate::config::Limits;
use crate::model::configuration::{CODE_LENGTH, MAX_RETENTION_SECONDS};
use crate::model::policy::{Conditions, Templates};
use crate::model::{ChallengeType, Policy, PolicyAlias, PolicySpec, Properties, TenantId};
use crate::store::WriteError;

pub const DEFAULT_PAGE_SIZE: usize = 20;
pub const MAX_PAGE_SIZE: usize = 100;
pub const MAX_RESEND_COOLDOWN_SECONDS: u64 = 3600;
pub const MAX_RESENDS: u32 = 20;
pub const MAX_LOCALES: usize = 32;
pub const MAX_LOCALE: usize = 35;
pub const MAX_SUBJECT: usize = 256;
pub const MAX_TEXT: usize = 8192;
pub const MAX_HTML: usize = 32768;
pub const MAX_SMS: usize = 1024;
pub const MAX_CONDITION_ITEMS: usize = 100;

/// A policy as the API shows it. A request body has the same shape: `alias` is required
/// on create (and may be left out of a replace); `version`, `created_at` and
/// `updated_at` are set by the server and ignored in requests, so a read can be sent
/// back as it is.
#[derive(Debug, Serialize, ToSchema)]
pub struct PolicyDto {
    pub alias: String,
    #[serde(flatten)]
    pub spec: PolicySpec,
    pub version: u64,
    pub created_at: String,
    pub updated_at: String,
}

impl PolicyDto {
    pub fn new(p: &Policy) -> Self {
        PolicyDto {
            alias: p.alias.to_string(),
            spec: p.spec.clone(),
            version: p.version,
            created_at: rfc3339(p.created_at),
            updated_at: rfc3339(p.updated_at),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PolicyList {
    pub policies: Vec<PolicyDto>,
    pub next_page_token: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct PolicyListQuery {
    /// 1..=100, default 20.
    pub page_size: Option<usize>,
    /// `next_page_token` of the previous page.
    pub page_token: Option<String>,
}

/// What a create request may ask for and gets by default: the tenant's configuration,
/// narrowed by the policy it names. A request may only narrow further.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    pub default_ttl_seconds: u64,
    pub max_ttl_seconds: u64,
    pub default_max_attempts: u32,
    pub max_attempts: u32,
    pub retention_seconds: u64,
}

impl Bounds {
    pub fn new(config: &Properties, policy: Option<&PolicySpec>) -> Self {
        let max_ttl_seconds = policy
            .and_then(|p| p.max_ttl_seconds)
            .map_or(config.max_ttl_seconds, |m| m.min(config.max_ttl_seconds));
        let max_attempts = policy
            .and_then(|p| p.max_attempts)
            .map_or(config.max_attempts, |m| m.min(config.max_attempts));
        // Defaults are held to the maxima: the tenant may have lowered a maximum below
        // a policy's default since the policy was written.
        Bounds {
            default_ttl_seconds: policy
                .and_then(|p| p.ttl_seconds)
                .unwrap_or(config.default_ttl_seconds)
                .min(max_ttl_seconds),
            max_ttl_seconds,
            default_max_attempts: policy
                .and_then(|p| p.max_attempts)
                .unwrap_or(config.default_max_attempts)
                .min(max_attempts),
            max_attempts,
            retention_seconds: policy
                .and_then(|p| p.retention_seconds)
                .unwrap_or(config.retention_seconds),
        }
    }
}

/// The policy a create request names: 400 `invalid_alias` if it cannot be one, 404
/// `policy_not_found` if the tenant has none by that name.
pub fn find(state: &State, tenant: &TenantId, raw: &str) -> Result<Policy, ApiError> {
    let alias = PolicyAlias::parse(raw).ok_or_else(|| {
        ApiError::invalid(
            "invalid_alias",
            "policy must be a policy alias: 1-64 of a-z 0-9 . _ -, starting with a letter or digit",
        )
    })?;
    state
        .registry
        .services()
        .store
        .policies()
        .get(tenant, &alias)?
        .ok_or(ApiError::PolicyNotFound)
}

/// An alias from the path; one that cannot exist is simply not found.
fn path_alias(raw: &str) -> Result<PolicyAlias, ApiError> {
    PolicyAlias::parse(raw).ok_or(ApiError::PolicyNotFound)
}

fn write_error(e: WriteError, alias: &PolicyAlias) -> ApiError {
    match e {
        WriteError::Exists => ApiError::AliasTaken(alias.to_string()),
        WriteError::NotFound => ApiError::PolicyNotFound,
        WriteError::Stale { current } => ApiError::VersionConflict {
            current_version: current,
        },
        WriteError::Store(e) => e.into(),
    }
}

/// Splits a policy body into its alias (if given) and its spec, dropping the
/// server-set fields.
fn parse_body(body: &[u8]) -> Result<(Option<String>, PolicySpec), ApiError> {
    let mut object: serde_json::Map<String, Value> = parse_json(body)?;
    let alias = match object.remove("alias") {
        None | Some(Value::Null) => None,
        Some(Value::String(alias)) => Some(alias),
        Some(_) => return Err(ApiError::invalid("invalid_field", "alias must be a string")),
    };
    for server_set in ["version", "created_at", "updated_at"] {
        object.remove(server_set);
    }
    let spec = serde_json::from_value(Value::Object(object)).map_err(json_error)?;
    Ok((alias, spec))
}

fn not_applicable(field: &str, kind: ChallengeType) -> ApiError {
    ApiError::invalid(
        "not_applicable",
        format!("{field} does not apply to {} policies", kind.as_str()),
    )
}

/// Checks a spec against the service-wide caps (the tenant's own maxima, which may
/// change, are applied when a challenge is created). Email domains are lower-cased.
fn check_spec(mut spec: PolicySpec, limits: &Limits) -> Result<PolicySpec, ApiError> {
    use ChallengeType::*;
    let kind = spec.kind;
    let otp = matches!(kind, EmailOtp | SmsOtp);
    let delivered = matches!(kind, EmailOtp | SmsOtp | EmailLink);
    let applicable = [
        ("code_length", spec.code_length.is_some(), otp),
        ("code_alphabet", spec.code_alphabet.is_some(), otp),
        (
            "resend_cooldown_seconds",
            spec.resend_cooldown_seconds.is_some(),
            delivered,
        ),
        ("max_resends", spec.max_resends.is_some(), delivered),
        ("resend_mode", spec.resend_mode.is_some(), delivered),
        ("templates", spec.templates.is_some(), delivered),
        ("conditions", spec.conditions.is_some(), delivered),
    ];
    if let Some((field, ..)) = applicable.iter().find(|(_, given, ok)| *given && !ok) {
        return Err(not_applicable(field, kind));
    }
    if let Some(url) = &spec.callback_url {
        // Checked against the outbound policy when a challenge uses it.
        super::dto::check_url("callback_url", url)?;
    }
    check_range(
        "max_ttl_seconds",
        spec.max_ttl_seconds,
        1..=limits.max_ttl_seconds,
    )?;
    let max_ttl = spec.max_ttl_seconds.unwrap_or(limits.max_ttl_seconds);
    check_range("ttl_seconds", spec.ttl_seconds, 1..=max_ttl)?;
    check_range("max_attempts", spec.max_attempts, 1..=limits.max_attempts)?;
    check_range("code_length", spec.code_length, CODE_LENGTH)?;
    check_range(
        "resend_cooldown_seconds",
        spec.resend_cooldown_seconds,
        0..=MAX_RESEND_COOLDOWN_SECONDS,
    )?;
    check_range("max_resends", spec.max_resends, 0..=MAX_RESENDS)?;
    check_range(
        "retention_seconds",
        spec.retention_seconds,
        0..=MAX_RETENTION_SECONDS,
    )?;
    if let Some(templates) = &spec.templates {
        check_templates(kind, templates)?;
    }
    if let Some(conditions) = &mut spec.conditions {
        check_conditions(kind, conditions)?;
    }
    Ok(spec)
}

fn check_templates(kind: ChallengeType, templates: &Templates) -> Result<(), ApiError> {
    if templates.locales.len() > MAX_LOCALES {
        return Err(ApiError::invalid(
            "too_many_items",
            format!("templates.locales holds more than {MAX_LOCALES} locales"),
        ));
    }
    let sms = kind == ChallengeType::SmsOtp;
    for (locale, template) in &templates.locales {
        if !is_locale(locale) {
            return Err(ApiError::invalid(
                "invalid_field",
                "templates.locales: every key must be a locale tag such as en or pt-BR",
            ));
        }
        let parts = [
            ("subject", &template.subject, MAX_SUBJECT, !sms),
            ("text", &template.text, MAX_TEXT, !sms),
            ("html", &template.html, MAX_HTML, !sms),
            ("sms", &template.sms, MAX_SMS, sms),
        ];
        if parts.iter().all(|(_, value, ..)| value.is_none()) {
            return Err(ApiError::invalid(
                "invalid_field",
                format!("templates.locales.{locale} must hold at least one text"),
            ));
        }
        for (name, value, max, applies) in parts {
            let Some(value) = value else { continue };
            let field = format!("templates.locales.{locale}.{name}");
            if !applies {
                return Err(not_applicable(&field, kind));
            }
            check_template_text(&field, value, max)?;
        }
    }
    if !templates.locales.contains_key(&templates.default_locale) {
        return Err(ApiError::invalid(
            "template_not_found",
            "templates.default_locale names no locale of templates.locales",
        ));
    }
    // Every text must parse as a template: a broken one is refused now, not at a send.
    let set: crate::delivery::TemplateSet = serde_json::to_value(templates)
        .and_then(serde_json::from_value)
        .map_err(|e| ApiError::invalid("template_error", e.to_string()))?;
    crate::delivery::check(&set).map_err(|e| ApiError::invalid("template_error", e.to_string()))?;
    Ok(())
}

/// `en`, `pt-BR`, `zh-Hant-TW`: a language of 2–8 letters, then subtags of 1–8 letters
/// or digits.
fn is_locale(tag: &str) -> bool {
    let mut parts = tag.split('-');
    let language = parts.next().unwrap_or_default();
    tag.len() <= MAX_LOCALE
        && (2..=8).contains(&language.len())
        && language.bytes().all(|b| b.is_ascii_alphabetic())
        && parts.all(|p| (1..=8).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_alphanumeric()))
}

/// Like `check_text`, but line breaks and tabs are allowed (each counts as one
/// character either way).
fn check_template_text(field: &str, value: &str, max: usize) -> Result<(), ApiError> {
    check_text(field, &value.replace(['\n', '\r', '\t'], " "), max)
}

fn check_conditions(kind: ChallengeType, conditions: &mut Conditions) -> Result<(), ApiError> {
    let email = matches!(kind, ChallengeType::EmailOtp | ChallengeType::EmailLink);
    if let Some(domains) = &mut conditions.email_domains {
        if !email {
            return Err(not_applicable("conditions.email_domains", kind));
        }
        check_list("conditions.email_domains", domains.len())?;
        for (i, domain) in domains.iter_mut().enumerate() {
            domain.make_ascii_lowercase();
            if !is_domain(domain) {
                return Err(ApiError::invalid(
                    "invalid_field",
                    format!(
                        "conditions.email_domains[{i}] is not a domain name such as example.com"
                    ),
                ));
            }
        }
    }
    if let Some(prefixes) = &conditions.phone_prefixes {
        if kind != ChallengeType::SmsOtp {
            return Err(not_applicable("conditions.phone_prefixes", kind));
        }
        check_list("conditions.phone_prefixes", prefixes.len())?;
        for (i, prefix) in prefixes.iter().enumerate() {
            let digits = prefix.strip_prefix('+').unwrap_or_default();
            if !(1..=4).contains(&digits.len()) || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err(ApiError::invalid(
                    "invalid_field",
                    format!("conditions.phone_prefixes[{i}] must be + and 1-4 digits, such as +44"),
                ));
            }
        }
    }
    Ok(())
}

fn check_list(field: &str, len: usize) -> Result<(), ApiError> {
    if len == 0 {
        return Err(ApiError::invalid(
            "invalid_field",
            format!("{field} must not be empty; leave it out to allow any"),
        ));
    }
    if len > MAX_CONDITION_ITEMS {
        return Err(ApiError::invalid(
            "too_many_items",
            format!("{field} holds more than {MAX_CONDITION_ITEMS} entries"),
        ));
    }
    Ok(())
}

/// A lower-case DNS name of at least two labels.
fn is_domain(name: &str) -> bool {
    let label_ok = |l: &str| {
        (1..=63).contains(&l.len())
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    };
    name.len() <= 253 && name.contains('.') && name.split('.').all(label_ok)
}

fn with_etag(mut response: actix_web::HttpResponseBuilder, policy: &Policy) -> HttpResponse {
    response
        .insert_header(etag(policy.version))
        .json(PolicyDto::new(policy))
}

/// Create a policy.
#[utoipa::path(post, path = "/api/v1/policies", tag = "policies",
    request_body(content = PolicyDto, description = "alias and type required; version, created_at and updated_at are ignored"),
    responses(
        (status = 201, description = "created, with ETag and Location", body = PolicyDto),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 409, description = "alias_taken", body = ErrorBody), (status = 413, body = ErrorBody)),
    security(("bearer" = ["challenge:policy:post"])))]
pub async fn create(
    req: HttpRequest,
    payload: web::Payload,
    state: State,
) -> Result<HttpResponse, ApiError> {
    let principal = require(&req, &state, Scope::PolicyPost)?;
    let body = json_body(&req, payload, state.settings.server.body_limit_bytes).await?;
    let (alias, spec) = parse_body(&body)?;
    let alias = alias.ok_or_else(|| ApiError::invalid("invalid_field", "alias is required"))?;
    let alias = PolicyAlias::parse(&alias).ok_or_else(|| {
        ApiError::invalid(
            "invalid_alias",
            "alias must be 1-64 of a-z 0-9 . _ -, starting with a letter or digit",
        )
    })?;
    let spec = check_spec(spec, &state.settings.limits)?;
    let services = state.registry.services();
    let now = services.clock.now_ms();
    let policy = Policy {
        alias,
        spec,
        version: 1,
        created_at: now,
        updated_at: now,
    };
    services
        .store
        .policies()
        .insert(&principal.tenant, &policy)
        .map_err(|e| write_error(e, &policy.alias))?;
    services.store.durable().await?;
    let mut response = HttpResponse::Created();
    response.insert_header((
        header::LOCATION,
        format!("/api/v1/policies/{}", policy.alias),
    ));
    Ok(with_etag(response, &policy))
}

/// List the tenant's policies in alias order, a page at a time.
#[utoipa::path(get, path = "/api/v1/policies", tag = "policies",
    params(PolicyListQuery),
    responses((status = 200, body = PolicyList), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = ["challenge:policy:get"])))]
pub async fn list(req: HttpRequest, state: State) -> Result<HttpResponse, ApiError> {
    let principal = require(&req, &state, Scope::PolicyGet)?;
    let q: PolicyListQuery = query(&req)?;
    let (page_size, after) = crate::api::page(
        q.page_size,
        DEFAULT_PAGE_SIZE,
        MAX_PAGE_SIZE,
        q.page_token.as_deref(),
        PolicyAlias::parse,
    )?;
    let store = state.registry.services().store.clone();
    let (page, next) = tokio::task::spawn_blocking(move || {
        store
            .policies()
            .list(&principal.tenant, after.as_ref(), page_size)
    })
    .await
    .map_err(|_| ApiError::Internal)??;
    Ok(HttpResponse::Ok().json(PolicyList {
        policies: page.iter().map(PolicyDto::new).collect(),
        next_page_token: next.map(|alias| alias.to_string()),
    }))
}

/// Read a policy; its `ETag` is its version.
#[utoipa::path(get, path = "/api/v1/policies/{alias}", tag = "policies",
    params(("alias" = String, Path)),
    responses((status = 200, description = "with ETag", body = PolicyDto), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, description = "policy_not_found", body = ErrorBody)),
    security(("bearer" = ["challenge:policy:get"])))]
pub async fn get(
    req: HttpRequest,
    path: web::Path<String>,
    state: State,
) -> Result<HttpResponse, ApiError> {
    let principal = require(&req, &state, Scope::PolicyGet)?;
    let alias = path_alias(&path)?;
    let policy = state
        .registry
        .services()
        .store
        .policies()
        .get(&principal.tenant, &alias)?
        .ok_or(ApiError::PolicyNotFound)?;
    Ok(with_etag(HttpResponse::Ok(), &policy))
}

/// Replace a policy as a whole. `If-Match` must carry the version read (its ETag).
#[utoipa::path(put, path = "/api/v1/policies/{alias}", tag = "policies",
    params(("alias" = String, Path),
        ("If-Match" = String, Header, description = "the ETag of the version replaced, e.g. \"3\"")),
    request_body(content = PolicyDto, description = "alias may be left out; version, created_at and updated_at are ignored"),
    responses((status = 200, description = "replaced; the new ETag", body = PolicyDto),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, description = "policy_not_found", body = ErrorBody),
        (status = 412, description = "version_conflict, with current_version", body = ErrorBody),
        (status = 428, description = "precondition_required: no If-Match", body = ErrorBody)),
    security(("bearer" = ["challenge:policy:put"])))]
pub async fn replace(
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
    state: State,
) -> Result<HttpResponse, ApiError> {
    let principal = require(&req, &state, Scope::PolicyPut)?;
    let alias = path_alias(&path)?;
    let expected = if_match(&req)?.ok_or(ApiError::PreconditionRequired)?;
    let body = json_body(&req, payload, state.settings.server.body_limit_bytes).await?;
    let (body_alias, spec) = parse_body(&body)?;
    if body_alias.is_some_and(|a| a != alias.as_str()) {
        return Err(ApiError::invalid(
            "invalid_field",
            format!("alias cannot change: leave it out or send {alias}"),
        ));
    }
    let spec = check_spec(spec, &state.settings.limits)?;
    let services = state.registry.services();
    let policy = services
        .store
        .policies()
        .replace(
            &principal.tenant,
            &alias,
            expected,
            spec,
            services.clock.now_ms(),
        )
        .map_err(|e| write_error(e, &alias))?;
    services.store.durable().await?;
    Ok(with_etag(HttpResponse::Ok(), &policy))
}

/// Delete a policy. Challenges created from it finish under their own copy.
#[utoipa::path(delete, path = "/api/v1/policies/{alias}", tag = "policies",
    params(("alias" = String, Path),
        ("If-Match" = Option<String>, Header, description = "optional: delete only this version")),
    responses((status = 204, description = "deleted"), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, description = "policy_not_found", body = ErrorBody),
        (status = 412, description = "version_conflict", body = ErrorBody)),
    security(("bearer" = ["challenge:policy:delete"])))]
pub async fn delete(
    req: HttpRequest,
    path: web::Path<String>,
    state: State,
) -> Result<HttpResponse, ApiError> {
    let principal = require(&req, &state, Scope::PolicyDelete)?;
    let alias = path_alias(&path)?;
    let expected = if_match(&req)?;
    let store = &state.registry.services().store;
    store
        .policies()
        .remove(&principal.tenant, &alias, expected)
        .map_err(|e| write_error(e, &alias))?;
    store.durable().await?;
    Ok(HttpResponse::NoContent().finish())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Settings;

    fn spec(json: Value) -> PolicySpec {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn a_policy_narrows_the_tenant_bounds_and_never_widens_them() {
        let config = Properties::from_limits(&Settings::development().limits);
        let plain = Bounds::new(&config, None);
        assert_eq!(plain.default_ttl_seconds, config.default_ttl_seconds);
        assert_eq!(plain.max_ttl_seconds, config.max_ttl_seconds);

        let p = spec(serde_json::json!({"type": "token", "ttl_seconds": 60,
            "max_ttl_seconds": 120, "max_attempts": 3, "retention_seconds": 10}));
        let b = Bounds::new(&config, Some(&p));
        assert_eq!(
            b,
            Bounds {
                default_ttl_seconds: 60,
                max_ttl_seconds: 120,
                default_max_attempts: 3,
                max_attempts: 3,
                retention_seconds: 10
            }
        );

        let lowered = Properties {
            max_ttl_seconds: 30,
            max_attempts: 2,
            default_max_attempts: 2,
            ..config
        };
        let b = Bounds::new(&lowered, Some(&p));
        assert_eq!((b.default_ttl_seconds, b.max_ttl_seconds), (30, 30));
        assert_eq!((b.default_max_attempts, b.max_attempts), (2, 2));
    }

    #[test]
    fn locales_and_domains_have_a_shape() {
        for ok in ["en", "pt-BR", "zh-Hant-TW", "de-1996"] {
            assert!(is_locale(ok), "{ok}");
        }
        for bad in ["", "e", "en_", "en-", "1a", "en--us", "en-toolongsubtag"] {
            assert!(!is_locale(bad), "{bad}");
        }
        for ok in ["example.com", "mail.example.co.uk", "x-1.io"] {
            assert!(is_domain(ok), "{ok}");
        }
        for bad in [
            "localhost",
            "-a.com",
            "a-.com",
            "a..com",
            "a b.com",
            "@a.com",
            ".com",
        ] {
            assert!(!is_domain(bad), "{bad}");
        }
    }
}
