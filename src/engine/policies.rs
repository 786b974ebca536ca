//! Policies: a tenant's named presets for creating challenges (spec/onewelcome-acs.md,
//! "Management API"). Here: the engine's policy operations — each one store call, a
//! compare-and-swap on the stored version, run off the async workers and awaited until
//! durable — the checks a policy must pass, and the rules by which a create takes its
//! defaults and bounds from one. Which fields apply to which kind, the kind answers
//! (`challenge::kinds`).

use super::input::{check_range, check_text, check_url};
use super::{authorize, error, Engine, Error};
use crate::auth::{Principal, Scope};
use crate::challenge::kinds::{self, PolicyField};
use crate::config::Limits;
use crate::model::configuration::{CODE_LENGTH, MAX_RETENTION_SECONDS};
use crate::model::policy::{Conditions, Templates};
use crate::model::{ChallengeType, Policy, PolicyAlias, PolicySpec, Properties, TenantId};
use crate::store::Precondition;
use crate::store::StoreError;

pub const MAX_RESEND_COOLDOWN_SECONDS: u64 = 3600;
pub const MAX_RESENDS: u32 = 20;
pub const MAX_LOCALES: usize = 32;
pub const MAX_LOCALE: usize = 35;
pub const MAX_SUBJECT: usize = 256;
pub const MAX_TEXT: usize = 8192;
pub const MAX_HTML: usize = 32768;
pub const MAX_SMS: usize = 1024;
pub const MAX_CONDITION_ITEMS: usize = 100;

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

impl Bounds {
    /// A TTL within these bounds, else 400 `ttl_out_of_range`.
    pub fn check_ttl(&self, ttl_seconds: u64) -> Result<(), Error> {
        if ttl_seconds == 0 || ttl_seconds > self.max_ttl_seconds {
            return Err(Error::invalid(
                "ttl_out_of_range",
                format!("ttl_seconds must be between 1 and {}", self.max_ttl_seconds),
            ));
        }
        Ok(())
    }
}

/// A policy alias as given in `field`: 400 `invalid_alias` if it cannot be one.
pub fn parse_alias(field: &str, raw: &str) -> Result<PolicyAlias, Error> {
    PolicyAlias::parse(raw).ok_or_else(|| {
        Error::invalid(
            "invalid_alias",
            format!(
                "{field} must be a policy alias: 1-64 of a-z 0-9 . _ -, starting with a letter or digit"
            ),
        )
    })
}

/// Whether a policy for `kind` may set `field`; a kind not enabled takes none.
fn applies(kind: ChallengeType, field: PolicyField) -> bool {
    kinds::of(kind).is_some_and(|k| k.policy_applies(field))
}

fn alias_taken(alias: &PolicyAlias) -> impl FnOnce() -> Error + '_ {
    move || Error::AliasTaken(alias.to_string())
}

impl Engine {
    /// The policy a create names, read off the async workers.
    pub(super) async fn find_policy(
        &self,
        tenant: &TenantId,
        alias: PolicyAlias,
    ) -> Result<Policy, Error> {
        let tenant = tenant.clone();
        self.blocking(move |store| store.policies().get(&tenant, &alias))
            .await?
            .ok_or(Error::PolicyNotFound)
    }

    /// Creates a policy at version 1 (`challenge:policy:post`); `alias_taken` if the
    /// alias exists.
    pub async fn create_policy(
        &self,
        principal: &Principal,
        alias: PolicyAlias,
        spec: PolicySpec,
    ) -> Result<Policy, Error> {
        authorize(principal, Scope::PolicyPost)?;
        let spec = check_spec(spec, &self.limits)?;
        let now = self.registry.services().clock.now_ms();
        let policy = Policy {
            alias,
            spec,
            version: 1,
            created_at: now,
            updated_at: now,
        };
        let tenant = principal.tenant.clone();
        let stored = policy.clone();
        self.blocking(move |store| {
            store.policies().insert(&tenant, &stored).map_err(|e| {
                error::write_error(e, alias_taken(&stored.alias), Error::PolicyNotFound)
            })
        })
        .await?;
        self.durable().await?;
        Ok(policy)
    }

    /// One of the tenant's policies (`challenge:policy:get`).
    pub async fn policy(&self, principal: &Principal, alias: PolicyAlias) -> Result<Policy, Error> {
        authorize(principal, Scope::PolicyGet)?;
        self.find_policy(&principal.tenant, alias).await
    }

    /// A page of the tenant's policies in alias order, after `after`; and the alias to
    /// continue after, if there are more (`challenge:policy:get`).
    pub async fn policies(
        &self,
        principal: &Principal,
        after: Option<PolicyAlias>,
        limit: usize,
    ) -> Result<(Vec<Policy>, Option<PolicyAlias>), Error> {
        authorize(principal, Scope::PolicyGet)?;
        let tenant = principal.tenant.clone();
        self.blocking(move |store| -> Result<_, StoreError> {
            store.policies().list(&tenant, after.as_ref(), limit)
        })
        .await
    }

    /// Replaces a policy's spec if `expected` admits its version, giving it the next
    /// version (`challenge:policy:put`).
    pub async fn replace_policy(
        &self,
        principal: &Principal,
        alias: PolicyAlias,
        expected: Precondition,
        spec: PolicySpec,
    ) -> Result<Policy, Error> {
        authorize(principal, Scope::PolicyPut)?;
        let spec = check_spec(spec, &self.limits)?;
        let tenant = principal.tenant.clone();
        let now = self.registry.services().clock.now_ms();
        let policy = self
            .blocking(move |store| {
                store
                    .policies()
                    .replace(&tenant, &alias, &expected, spec, now)
                    .map_err(|e| error::write_error(e, alias_taken(&alias), Error::PolicyNotFound))
            })
            .await?;
        self.durable().await?;
        Ok(policy)
    }

    /// Deletes a policy if `expected` admits its version (`challenge:policy:delete`). Challenges created from it keep their own copy.
    pub async fn delete_policy(
        &self,
        principal: &Principal,
        alias: PolicyAlias,
        expected: Precondition,
    ) -> Result<(), Error> {
        authorize(principal, Scope::PolicyDelete)?;
        let tenant = principal.tenant.clone();
        self.blocking(move |store| {
            store
                .policies()
                .remove(&tenant, &alias, &expected)
                .map_err(|e| error::write_error(e, alias_taken(&alias), Error::PolicyNotFound))
        })
        .await?;
        self.durable().await
    }
}

fn not_applicable(field: &str, kind: ChallengeType) -> Error {
    Error::invalid(
        "not_applicable",
        format!("{field} does not apply to {} policies", kind.as_str()),
    )
}

/// Checks a spec against the service-wide caps (the tenant's own maxima, which may
/// change, are applied when a challenge is created). Email domains are lower-cased.
pub fn check_spec(mut spec: PolicySpec, limits: &Limits) -> Result<PolicySpec, Error> {
    let kind = spec.kind;
    let applies = |field| applies(kind, field);
    let applicable = [
        (
            "code_length",
            spec.code_length.is_some(),
            PolicyField::CodeLength,
        ),
        (
            "code_alphabet",
            spec.code_alphabet.is_some(),
            PolicyField::CodeAlphabet,
        ),
        (
            "resend_cooldown_seconds",
            spec.resend_cooldown_seconds.is_some(),
            PolicyField::ResendCooldownSeconds,
        ),
        (
            "max_resends",
            spec.max_resends.is_some(),
            PolicyField::MaxResends,
        ),
        (
            "resend_mode",
            spec.resend_mode.is_some(),
            PolicyField::ResendMode,
        ),
        (
            "templates",
            spec.templates.is_some(),
            PolicyField::Templates,
        ),
        (
            "conditions",
            spec.conditions.is_some(),
            PolicyField::Conditions,
        ),
        (
            "allowed_action_scopes",
            spec.allowed_action_scopes.is_some(),
            PolicyField::ActionScopes,
        ),
    ];
    if let Some((field, ..)) = applicable
        .iter()
        .find(|(_, given, field)| *given && !applies(*field))
    {
        return Err(not_applicable(field, kind));
    }
    if let Some(url) = &spec.callback_url {
        // Checked against the outbound policy when a challenge uses it.
        check_url("callback_url", url)?;
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
    if let Some(scopes) = &spec.allowed_action_scopes {
        crate::challenge::kinds::action::check_allowed_scopes("allowed_action_scopes", scopes)?;
    }
    Ok(spec)
}

fn check_templates(kind: ChallengeType, templates: &Templates) -> Result<(), Error> {
    if templates.locales.len() > MAX_LOCALES {
        return Err(Error::invalid(
            "too_many_items",
            format!("templates.locales holds more than {MAX_LOCALES} locales"),
        ));
    }
    let (email, sms) = (
        applies(kind, PolicyField::EmailTemplates),
        applies(kind, PolicyField::SmsTemplate),
    );
    for (locale, template) in &templates.locales {
        if !is_locale(locale) {
            return Err(Error::invalid(
                "invalid_field",
                "templates.locales: every key must be a locale tag such as en or pt-BR",
            ));
        }
        let parts = [
            ("subject", &template.subject, MAX_SUBJECT, email),
            ("text", &template.text, MAX_TEXT, email),
            ("html", &template.html, MAX_HTML, email),
            ("sms", &template.sms, MAX_SMS, sms),
        ];
        if parts.iter().all(|(_, value, ..)| value.is_none()) {
            return Err(Error::invalid(
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
        return Err(Error::invalid(
            "template_not_found",
            "templates.default_locale names no locale of templates.locales",
        ));
    }
    // Every text must parse as a template: a broken one is refused now, not at a send.
    let set: crate::delivery::TemplateSet = serde_json::to_value(templates)
        .and_then(serde_json::from_value)
        .map_err(|e| Error::invalid("template_error", e.to_string()))?;
    crate::delivery::check(&set).map_err(|e| Error::invalid("template_error", e.to_string()))?;
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
fn check_template_text(field: &str, value: &str, max: usize) -> Result<(), Error> {
    check_text(field, &value.replace(['\n', '\r', '\t'], " "), max)
}

fn check_conditions(kind: ChallengeType, conditions: &mut Conditions) -> Result<(), Error> {
    if let Some(domains) = &mut conditions.email_domains {
        if !applies(kind, PolicyField::EmailDomains) {
            return Err(not_applicable("conditions.email_domains", kind));
        }
        check_list("conditions.email_domains", domains.len())?;
        for (i, domain) in domains.iter_mut().enumerate() {
            domain.make_ascii_lowercase();
            if !is_domain(domain) {
                return Err(Error::invalid(
                    "invalid_field",
                    format!(
                        "conditions.email_domains[{i}] is not a domain name such as example.com"
                    ),
                ));
            }
        }
    }
    if let Some(prefixes) = &conditions.phone_prefixes {
        if !applies(kind, PolicyField::PhonePrefixes) {
            return Err(not_applicable("conditions.phone_prefixes", kind));
        }
        check_list("conditions.phone_prefixes", prefixes.len())?;
        for (i, prefix) in prefixes.iter().enumerate() {
            let digits = prefix.strip_prefix('+').unwrap_or_default();
            if !(1..=4).contains(&digits.len()) || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err(Error::invalid(
                    "invalid_field",
                    format!("conditions.phone_prefixes[{i}] must be + and 1-4 digits, such as +44"),
                ));
            }
        }
    }
    Ok(())
}

fn check_list(field: &str, len: usize) -> Result<(), Error> {
    if len == 0 {
        return Err(Error::invalid(
            "invalid_field",
            format!("{field} must not be empty; leave it out to allow any"),
        ));
    }
    if len > MAX_CONDITION_ITEMS {
        return Err(Error::invalid(
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Settings;
    use serde_json::Value;

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
