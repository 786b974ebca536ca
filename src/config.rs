//! Settings: the shipped `config/default.toml` (embedded), then each `--config` file in
//! order, then `CHALLENGE_SERVER__SECTION__KEY` environment variables — deserialized once
//! into one typed struct and validated at start. A bad value fails start-up with a message
//! that names the key.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::providers::{Env, Format, Toml};
use figment::Figment;
use serde::Deserialize;

use crate::model::configuration;

/// The shipped defaults; every key is documented there.
pub const DEFAULT_TOML: &str = include_str!("../config/default.toml");

/// The development HS256 secret shipped in `config/default.toml`.
pub const DEV_SECRET: &str = "challenge-server-development-key-do-not-use-in-production";

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub server: ServerSettings,
    pub storage: StorageSettings,
    pub engine: EngineSettings,
    pub limits: Limits,
    pub auth: AuthSettings,
    pub actions: ActionSettings,
    pub log: LogSettings,
    pub email: EmailSettings,
    pub sms: SmsSettings,
    pub webhooks: WebhookSettings,
    pub delivery: DeliverySettings,
    pub totp: TotpSettings,
    pub metrics: MetricsSettings,
    pub push: PushSettings,
    pub webauthn: WebauthnSettings,
    #[serde(default)]
    pub compat: CompatSettings,
}

/// WebAuthn factors; see `[webauthn]` in `config/default.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebauthnSettings {
    /// How long an enrollment's registration ceremony stays open.
    pub enrollment_ttl_seconds: u64,
    /// The relying parties of every tenant without its own list; the first is the
    /// default.
    #[serde(default)]
    pub relying_parties: Vec<RelyingPartySettings>,
    /// A tenant's own relying parties, replacing the server's list for it.
    #[serde(default)]
    pub tenants: std::collections::HashMap<String, TenantRelyingParties>,
}

/// `[webauthn.tenants.<tenant>]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantRelyingParties {
    pub relying_parties: Vec<RelyingPartySettings>,
}

/// One relying party: its id (a domain), the origin its pages are served from, and the
/// name authenticators show.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RelyingPartySettings {
    pub id: String,
    pub origin: String,
    pub name: String,
}

/// The vendor faces; see `[compat.*]` in `config/default.toml`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompatSettings {
    #[serde(default)]
    pub twilio: TwilioSettings,
    #[serde(default)]
    pub agilicus: AgilicusSettings,
    #[serde(default)]
    pub apiture: ApitureSettings,
}

/// The Agilicus ChallengesApi face (`/v1/challenges…`, `/v1/challenge_enrollment/…`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgilicusSettings {
    /// The bearer token's claims that name the tenant, tried in order (Agilicus tokens
    /// carry the organisation as `org`).
    #[serde(default = "default_agilicus_tenant_claims")]
    pub tenant_claims: Vec<String>,
}

fn default_agilicus_tenant_claims() -> Vec<String> {
    vec!["tenant".into(), "org".into()]
}

impl Default for AgilicusSettings {
    fn default() -> Self {
        AgilicusSettings {
            tenant_claims: default_agilicus_tenant_claims(),
        }
    }
}

/// The Apiture auth-challenges face (`/auth/…`): which API keys may call it, and their
/// tenants.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApitureSettings {
    #[serde(default)]
    pub api_keys: Vec<ApitureApiKey>,
}

/// One `[[compat.apiture.api_keys]]`: the `API-Key` header value maps to `tenant`. The
/// key is given plain (`key`) or as the hex SHA-256 of it (`key_sha256`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApitureApiKey {
    #[serde(default)]
    pub key: Secret,
    #[serde(default)]
    pub key_sha256: String,
    pub tenant: String,
}

/// The Twilio Verify face (`/v2/…`): which accounts may call it, and their tenants.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TwilioSettings {
    #[serde(default)]
    pub accounts: Vec<TwilioAccount>,
}

/// One `[[compat.twilio.accounts]]`: HTTP Basic `account_sid:auth_token` maps to
/// `tenant`. The token is given plain (`auth_token`, which also signs the account's
/// webhooks) or as the hex SHA-256 of it (`auth_token_sha256`, then no webhooks).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TwilioAccount {
    pub account_sid: String,
    #[serde(default)]
    pub auth_token: Secret,
    #[serde(default)]
    pub auth_token_sha256: String,
    pub tenant: String,
}

/// Push factors; see `[push]` in `config/default.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PushSettings {
    /// Where each new push challenge of a `webhook` factor is POSTed, signed as status
    /// webhooks are; empty: none is sent (devices poll).
    pub gateway_url: String,
}

/// The service's TOTP defaults; an enrollment may override each within its bounds
/// (`factors::totp`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TotpSettings {
    /// The issuer an authenticator app shows, unless an enrollment names its own.
    pub issuer: String,
    pub algorithm: crate::factors::totp::Algorithm,
    pub digits: u32,
    pub period_seconds: u32,
    pub skew_steps: u32,
}

/// Where and for whom `/metrics` is served; see `[metrics]` in `config/default.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsSettings {
    /// A separate listener for `/metrics` alone; `None`: served on `server.listen`.
    #[serde(default, deserialize_with = "optional_address")]
    pub listen: Option<SocketAddr>,
    /// `/metrics` needs a bearer token with `challenge:metrics:get`.
    pub require_scope: bool,
}

/// An address, or the empty string for none.
fn optional_address<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<SocketAddr>, D::Error> {
    let text = String::deserialize(d)?;
    if text.is_empty() {
        return Ok(None);
    }
    text.parse().map(Some).map_err(serde::de::Error::custom)
}

/// How codes and links are delivered and resent, where no policy says otherwise.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeliverySettings {
    pub max_attempts: u32,
    pub backoff_ms: u64,
    pub per_recipient_daily_cap: u32,
    pub per_recipient_daily_cap_per_tenant: u32,
    pub resend_cooldown_seconds: u32,
    pub max_resends: u32,
    pub resend_mode: crate::model::ResendMode,
    pub code_alphabet: crate::model::Alphabet,
}

/// Outbound requests: the URL policy for every URL given in a request, and how the HTTP
/// actions of one-time-use challenges run and are signed.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActionSettings {
    pub allow_hosts: Vec<String>,
    pub allow_private: bool,
    pub timeout_ms: u64,
    pub max_retries: u32,
    pub backoff_ms: u64,
    pub allowed_scopes: Vec<String>,
    pub max_actions: usize,
    pub max_body_bytes: usize,
    pub token_ttl_seconds: u64,
    pub signing_algorithm: String,
    #[serde(default)]
    pub signing_key_file: Option<PathBuf>,
    pub signing_secret: Secret,
    pub signing_kid: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    pub listen: SocketAddr,
    pub workers: usize,
    pub body_limit_bytes: usize,
    /// Longest a client may take to send a request's head (line and headers).
    pub request_head_timeout_ms: u64,
    /// Longest a client may take to send a request's body, once its head has arrived.
    pub body_read_timeout_ms: u64,
    pub shutdown_timeout_seconds: u64,
    pub public_base_url: String,
    /// Reverse proxies (CIDRs or addresses) whose `Forwarded` / `X-Forwarded-For` name
    /// the client of an anonymous request.
    pub trusted_proxies: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageSettings {
    pub data_dir: PathBuf,
    pub cache_capacity_bytes: u64,
    pub secret: Secret,
    /// The key that encrypts enrolled factors' secrets; empty: `<data_dir>/secrets.key`.
    pub secrets_key_file: PathBuf,
    /// A log segment older than this is closed and sled checkpointed behind it.
    pub checkpoint_interval_ms: u64,
    /// A log segment larger than this is closed and sled checkpointed behind it.
    pub log_segment_bytes: u64,
    /// Sync the log with `fdatasync` rather than `sync_file_range`.
    pub fdatasync: bool,
}

impl StorageSettings {
    pub fn checkpoints(&self) -> crate::store::Checkpoints {
        crate::store::Checkpoints {
            interval: std::time::Duration::from_millis(self.checkpoint_interval_ms),
            segment_bytes: self.log_segment_bytes,
            fdatasync: self.fdatasync,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EngineSettings {
    pub arbiters: usize,
}

configuration::with_tenant_properties! {
    /// Bounds applied to every request; see `config/default.toml` for each key's meaning.
    /// The tenant properties are only initial values ([`crate::model::TenantConfig`]);
    /// their maxima are also caps on what a tenant may set. The last three fields no
    /// tenant can change.
    #[derive(Debug, Clone, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Limits {
        pub max_actors: usize,
        /// Challenges one list request examines at most.
        pub list_scan_budget: usize,
        pub anonymous_answers_per_ip_per_minute: u32,
        /// Challenges a tenant may keep at all, live or ended and within retention; never
        /// less than the tenant's `max_live_challenges` in effect.
        pub max_stored_challenges: u64,
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSettings {
    pub algorithms: Vec<String>,
    pub tenant_claim: String,
    pub issuer: String,
    pub audience: String,
    pub leeway_seconds: u64,
    /// Serve the public development key on a non-loopback address anyway.
    pub insecure_dev_key: bool,
    /// With production keys (no development key), `issuer` and `audience` must be set.
    pub require_issuer_and_audience: bool,
    /// Longest `exp - iat` a bearer token may claim; 0 = no limit.
    pub max_token_lifetime_seconds: u64,
    #[serde(default)]
    pub keys: Vec<KeySettings>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeySettings {
    pub kid: String,
    pub algorithm: String,
    #[serde(default)]
    pub secret: Option<Secret>,
    #[serde(default)]
    pub public_key_pem: Option<String>,
    #[serde(default)]
    pub public_key_file: Option<PathBuf>,
    #[serde(default)]
    pub private_key_pem: Option<Secret>,
    #[serde(default)]
    pub private_key_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    pub format: LogFormat,
    pub level: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// The SMTP relay that email challenges go through; see `[email]` in `config/default.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailSettings {
    /// Empty: email delivery is off.
    pub smtp_host: String,
    pub smtp_port: u16,
    pub tls: SmtpTls,
    /// Empty: no SMTP AUTH.
    pub username: String,
    pub password: Secret,
    /// The `From` mailbox, `Name <address>` or a bare address.
    pub from: String,
    pub timeout_ms: u64,
    pub pool_max_size: u32,
}

/// How the SMTP connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    /// Plain text: only for a relay on the same host or a trusted network.
    None,
    /// Connect in plain text, then upgrade with STARTTLS (required, never optional).
    Starttls,
    /// TLS from the first byte (SMTPS, usually port 465).
    Tls,
}

/// The HTTP gateway that SMS challenges go through; see `[sms]` in `config/default.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmsSettings {
    /// Empty: SMS delivery is off.
    pub gateway_url: String,
    pub format: SmsFormat,
    pub from: String,
    pub username: String,
    pub password: Secret,
    pub signing_secret: Secret,
    pub timeout_ms: u64,
    pub max_length: usize,
}

/// The request shape the SMS gateway expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmsFormat {
    /// `{"to", "body", "challenge_id"}` as JSON, optionally HMAC-signed.
    Json,
    /// A Twilio Messages-compatible form post with HTTP basic auth.
    Twilio,
}

/// Outbound status webhooks; see `[webhooks]` in `config/default.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookSettings {
    pub timeout_ms: u64,
    pub max_retries: u32,
    pub backoff_ms: u64,
}

/// A configured secret: deserializes from a string, never prints.
#[derive(Clone, Deserialize, Default)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file {0} does not exist")]
    Missing(PathBuf),
    #[error("configuration: {0}")]
    Parse(String),
    #[error("configuration key `{key}`: {message}")]
    Invalid { key: &'static str, message: String },
}

impl Settings {
    /// Loads the embedded defaults, then `files` in order, then the environment.
    pub fn load(files: &[PathBuf]) -> Result<Settings, ConfigError> {
        Self::load_with_env(files, true)
    }

    /// Like [`Settings::load`]; `env = false` ignores the environment (for tests).
    pub fn load_with_env(files: &[PathBuf], env: bool) -> Result<Settings, ConfigError> {
        let mut figment = Figment::from(Toml::string(DEFAULT_TOML));
        for file in files {
            if !file.is_file() {
                return Err(ConfigError::Missing(file.clone()));
            }
            figment = figment.merge(Toml::file(file));
        }
        if env {
            figment = figment.merge(Env::prefixed("CHALLENGE_SERVER__").split("__"));
        }
        let settings: Settings = figment
            .extract()
            .map_err(|e| ConfigError::Parse(describe(e)))?;
        settings.validate()?;
        Ok(settings)
    }

    /// The development defaults, ignoring the environment.
    pub fn development() -> Settings {
        Self::load_with_env(&[], false).expect("shipped defaults are valid")
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let l = &self.limits;
        if l.max_ttl_seconds == 0 {
            return invalid("limits.max_ttl_seconds", "must be at least 1");
        }
        if l.default_ttl_seconds == 0 || l.default_ttl_seconds > l.max_ttl_seconds {
            return invalid(
                "limits.default_ttl_seconds",
                "must be between 1 and limits.max_ttl_seconds",
            );
        }
        if l.max_attempts == 0 {
            return invalid("limits.max_attempts", "must be at least 1");
        }
        if l.default_max_attempts == 0 || l.default_max_attempts > l.max_attempts {
            return invalid(
                "limits.default_max_attempts",
                "must be between 1 and limits.max_attempts",
            );
        }
        if !configuration::CODE_LENGTH.contains(&l.default_code_length) {
            return invalid("limits.default_code_length", "must be between 4 and 10");
        }
        if l.retention_seconds > configuration::MAX_RETENTION_SECONDS {
            return invalid(
                "limits.retention_seconds",
                "must be at most 31536000 (one year)",
            );
        }
        if l.anonymous_failures_per_challenge_per_minute > configuration::MAX_ANONYMOUS_FAILURES {
            return invalid(
                "limits.anonymous_failures_per_challenge_per_minute",
                "must be at most 1000",
            );
        }
        if l.max_actors == 0 {
            return invalid("limits.max_actors", "must be at least 1");
        }
        if l.list_scan_budget == 0 {
            return invalid("limits.list_scan_budget", "must be at least 1");
        }
        if l.max_live_challenges == 0 {
            return invalid("limits.max_live_challenges", "must be at least 1");
        }
        if let Err(e) = crate::api::TrustedProxies::parse(&self.server.trusted_proxies) {
            return invalid("server.trusted_proxies", &e);
        }
        if self.server.body_limit_bytes < 1024 {
            return invalid("server.body_limit_bytes", "must be at least 1024");
        }
        if self.server.request_head_timeout_ms == 0 {
            return invalid("server.request_head_timeout_ms", "must be at least 1");
        }
        if self.server.body_read_timeout_ms == 0 {
            return invalid("server.body_read_timeout_ms", "must be at least 1");
        }
        if !self.storage.secret.is_empty() {
            let ok = self.storage.secret.expose().len() == 64
                && hex::decode(self.storage.secret.expose()).is_ok();
            if !ok {
                return invalid("storage.secret", "must be 64 hex characters (32 bytes)");
            }
        }
        let t = &self.totp;
        let totp = crate::factors::totp::Params::check(
            t.algorithm,
            t.digits,
            t.period_seconds,
            t.skew_steps,
        );
        if let Err(e) = totp {
            let key = match e.field {
                "digits" => "totp.digits",
                "period_seconds" => "totp.period_seconds",
                _ => "totp.skew_steps",
            };
            return invalid(key, &e.to_string());
        }
        if t.issuer.is_empty() || t.issuer.chars().count() > 64 {
            return invalid("totp.issuer", "must be 1 to 64 characters");
        }
        let gateway = &self.push.gateway_url;
        if !gateway.is_empty()
            && crate::engine::input::check_url("push.gateway_url", gateway).is_err()
        {
            return invalid("push.gateway_url", "must be an http or https URL, or empty");
        }
        let w = &self.webauthn;
        if w.enrollment_ttl_seconds == 0 || w.enrollment_ttl_seconds > 86_400 {
            return invalid(
                "webauthn.enrollment_ttl_seconds",
                "must be between 1 and 86400",
            );
        }
        if let Err((key, message)) = crate::factors::webauthn::RelyingParties::from_settings(w) {
            let key = if key.starts_with("webauthn.tenants") {
                "webauthn.tenants"
            } else {
                "webauthn.relying_parties"
            };
            return invalid(key, &message);
        }
        let a = &self.actions;
        if a.token_ttl_seconds == 0 || a.token_ttl_seconds > 300 {
            return invalid("actions.token_ttl_seconds", "must be between 1 and 300");
        }
        if a.timeout_ms == 0 {
            return invalid("actions.timeout_ms", "must be at least 1");
        }
        if a.max_retries > 10 {
            return invalid("actions.max_retries", "must be at most 10");
        }
        if !matches!(a.signing_algorithm.as_str(), "ES256" | "RS256" | "HS256") {
            return invalid("actions.signing_algorithm", "must be ES256, RS256 or HS256");
        }
        if a.signing_algorithm == "HS256" && a.signing_secret.expose().len() < 32 {
            return invalid(
                "actions.signing_secret",
                "HS256 needs a secret of at least 32 bytes",
            );
        }
        if a.signing_algorithm == "RS256" && a.signing_key_file.is_none() {
            return invalid(
                "actions.signing_key_file",
                "RS256 needs a PEM private key file",
            );
        }
        for host in &a.allow_hosts {
            let h = host.strip_prefix('.').unwrap_or(host);
            if h.is_empty()
                || h.contains(['/', ':', ' ', '@']) && h.parse::<std::net::IpAddr>().is_err()
            {
                return invalid(
                    "actions.allow_hosts",
                    "entries are hosts or .suffixes, without scheme or port",
                );
            }
        }
        let d = &self.delivery;
        if d.max_attempts == 0 || d.max_attempts > 10 {
            return invalid("delivery.max_attempts", "must be between 1 and 10");
        }
        if self.compat.agilicus.tenant_claims.is_empty()
            || self
                .compat
                .agilicus
                .tenant_claims
                .iter()
                .any(String::is_empty)
        {
            return invalid(
                "compat.agilicus.tenant_claims",
                "must name at least one claim, none of them empty",
            );
        }
        if self.auth.tenant_claim.is_empty() {
            return invalid("auth.tenant_claim", "must not be empty");
        }
        if self.auth.keys.is_empty() {
            return invalid("auth.keys", "at least one verification key is required");
        }
        if !self.uses_dev_key() && self.auth.require_issuer_and_audience {
            if self.auth.issuer.is_empty() {
                return invalid(
                    "auth.issuer",
                    "is required with your own [[auth.keys]]: set it to the `iss` your token \
                     issuer writes (or auth.require_issuer_and_audience = false to accept tokens \
                     from any issuer the keys trust)",
                );
            }
            if self.auth.audience.is_empty() {
                return invalid(
                    "auth.audience",
                    "is required with your own [[auth.keys]]: set it to the `aud` tokens for \
                     this server carry (or auth.require_issuer_and_audience = false to accept \
                     tokens meant for any audience)",
                );
            }
        }
        // Algorithms and key material are checked when the verifier is built
        // (auth::jwt::Verifier::from_settings), which names the key by its kid.
        self.validate_twilio()?;
        self.validate_apiture()?;
        self.validate_email()?;
        self.validate_sms()?;
        self.validate_webhooks()
    }

    fn validate_twilio(&self) -> Result<(), ConfigError> {
        let accounts = &self.compat.twilio.accounts;
        for (i, a) in accounts.iter().enumerate() {
            let sid_ok = a.account_sid.len() == 34
                && a.account_sid.starts_with("AC")
                && a.account_sid[2..]
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
            if !sid_ok {
                return invalid(
                    "compat.twilio.accounts.account_sid",
                    "must be AC followed by 32 lower-case hex digits",
                );
            }
            if accounts[..i].iter().any(|b| b.account_sid == a.account_sid) {
                return invalid(
                    "compat.twilio.accounts.account_sid",
                    &format!("{} is listed twice", a.account_sid),
                );
            }
            match (a.auth_token.is_empty(), a.auth_token_sha256.is_empty()) {
                (false, true) => {}
                (true, false) => {
                    let ok = a.auth_token_sha256.len() == 64
                        && hex::decode(&a.auth_token_sha256).is_ok();
                    if !ok {
                        return invalid(
                            "compat.twilio.accounts.auth_token_sha256",
                            "must be 64 hex characters (the SHA-256 of the auth token)",
                        );
                    }
                }
                _ => {
                    return invalid(
                        "compat.twilio.accounts.auth_token",
                        &format!(
                            "{}: give exactly one of auth_token and auth_token_sha256",
                            a.account_sid
                        ),
                    )
                }
            }
            if crate::model::TenantId::parse(&a.tenant).is_none() {
                return invalid(
                    "compat.twilio.accounts.tenant",
                    "must be 1-64 of A-Z a-z 0-9 . _ -",
                );
            }
        }
        Ok(())
    }

    fn validate_apiture(&self) -> Result<(), ConfigError> {
        for k in &self.compat.apiture.api_keys {
            match (k.key.is_empty(), k.key_sha256.is_empty()) {
                (false, true) => {}
                (true, false) => {
                    let ok = k.key_sha256.len() == 64 && hex::decode(&k.key_sha256).is_ok();
                    if !ok {
                        return invalid(
                            "compat.apiture.api_keys.key_sha256",
                            "must be 64 hex characters (the SHA-256 of the API key)",
                        );
                    }
                }
                _ => {
                    return invalid(
                        "compat.apiture.api_keys.key",
                        &format!(
                            "tenant {}: give exactly one of key and key_sha256",
                            k.tenant
                        ),
                    )
                }
            }
            if crate::model::TenantId::parse(&k.tenant).is_none() {
                return invalid(
                    "compat.apiture.api_keys.tenant",
                    "must be 1-64 of A-Z a-z 0-9 . _ -",
                );
            }
        }
        Ok(())
    }

    fn validate_email(&self) -> Result<(), ConfigError> {
        let e = &self.email;
        if e.smtp_host.is_empty() {
            return Ok(());
        }
        if e.smtp_host.trim() != e.smtp_host || e.smtp_host.contains(['/', ':', '@']) {
            return invalid("email.smtp_host", "must be a bare host name or IP address");
        }
        if e.smtp_port == 0 {
            return invalid("email.smtp_port", "must be between 1 and 65535");
        }
        if let Err(error) = e.from.parse::<lettre::message::Mailbox>() {
            return invalid(
                "email.from",
                &format!("is not a mailbox like `Name <address@example.com>` ({error})"),
            );
        }
        if e.username.is_empty() && !e.password.is_empty() {
            return invalid("email.password", "is set but email.username is empty");
        }
        if e.timeout_ms == 0 {
            return invalid("email.timeout_ms", "must be at least 1");
        }
        if e.pool_max_size == 0 {
            return invalid("email.pool_max_size", "must be at least 1");
        }
        Ok(())
    }

    fn validate_sms(&self) -> Result<(), ConfigError> {
        let s = &self.sms;
        if s.gateway_url.is_empty() {
            return Ok(());
        }
        match reqwest::Url::parse(&s.gateway_url) {
            Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => {}
            _ => {
                return invalid(
                    "sms.gateway_url",
                    "must be an http:// or https:// URL (or empty to turn SMS off)",
                )
            }
        }
        if s.format == SmsFormat::Twilio {
            if s.from.is_empty() {
                return invalid("sms.from", "is required with format = \"twilio\"");
            }
            if s.username.is_empty() || s.password.is_empty() {
                return invalid(
                    "sms.username",
                    "format = \"twilio\" needs sms.username and sms.password",
                );
            }
            if !s.signing_secret.is_empty() {
                return invalid(
                    "sms.signing_secret",
                    "only applies to format = \"json\"; Twilio requests use basic auth",
                );
            }
        }
        if s.username.is_empty() && !s.password.is_empty() {
            return invalid("sms.password", "is set but sms.username is empty");
        }
        if s.timeout_ms == 0 {
            return invalid("sms.timeout_ms", "must be at least 1");
        }
        if s.max_length == 0 {
            return invalid("sms.max_length", "must be at least 1");
        }
        Ok(())
    }

    fn validate_webhooks(&self) -> Result<(), ConfigError> {
        let w = &self.webhooks;
        if w.timeout_ms == 0 {
            return invalid("webhooks.timeout_ms", "must be at least 1");
        }
        if w.backoff_ms == 0 {
            return invalid("webhooks.backoff_ms", "must be at least 1");
        }
        if w.max_retries > MAX_WEBHOOK_RETRIES {
            return invalid("webhooks.max_retries", "must be at most 20");
        }
        Ok(())
    }

    /// Why this configuration must not serve `addr`: the public development key on an
    /// address other than loopback, without `auth.insecure_dev_key`.
    pub fn refuse_dev_key_on(&self, addr: std::net::IpAddr) -> Option<String> {
        if !self.uses_dev_key() || self.auth.insecure_dev_key || addr.to_canonical().is_loopback() {
            return None;
        }
        Some(format!(
            "refusing to listen on {addr} with the public development key (auth.keys kid \"dev\" \
             from config/default.toml): anyone could mint tokens for this server. Configure your \
             own key in a site config ([[auth.keys]] with auth.issuer and auth.audience; see \
             README.md, \"Auth keys for production\") and pass it with --config, or listen on \
             127.0.0.1. To serve the development key anyway, pass --insecure-dev-key (or set \
             auth.insecure_dev_key = true)."
        ))
    }

    /// True while the publicly known development key is configured.
    pub fn uses_dev_key(&self) -> bool {
        self.auth
            .keys
            .iter()
            .any(|k| k.secret.as_ref().is_some_and(|s| s.expose() == DEV_SECRET))
    }

    pub fn data_dir(&self) -> &Path {
        &self.storage.data_dir
    }

    /// Where the key that encrypts factors' secrets is kept.
    pub fn secrets_key_file(&self) -> PathBuf {
        if self.storage.secrets_key_file.as_os_str().is_empty() {
            self.storage.data_dir.join("secrets.key")
        } else {
            self.storage.secrets_key_file.clone()
        }
    }
}

/// Upper bound of `webhooks.max_retries`: with exponential backoff, more retries only
/// add waits of the capped length.
pub const MAX_WEBHOOK_RETRIES: u32 = 20;

fn invalid(key: &'static str, message: &str) -> Result<(), ConfigError> {
    Err(ConfigError::Invalid {
        key,
        message: message.to_string(),
    })
}

fn describe(error: figment::Error) -> String {
    error
        .into_iter()
        .map(|e| {
            let key = e.path.join(".");
            let mut e = e;
            e.path.clear();
            let message = e.to_string();
            if key.is_empty() {
                message
            } else {
                format!("key `{key}`: {message}")
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn shipped_defaults_load_and_validate() {
        let s = Settings::development();
        assert_eq!(s.limits.max_live_challenges, 1_000_000);
        assert_eq!(s.limits.default_ttl_seconds, 300);
        assert!(s.uses_dev_key());
    }

    #[test]
    fn later_files_override_earlier_ones_key_by_key() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.toml");
        let b = dir.path().join("b.toml");
        writeln!(
            std::fs::File::create(&a).unwrap(),
            "[limits]\nmax_ttl_seconds = 100\ndefault_ttl_seconds = 50"
        )
        .unwrap();
        writeln!(
            std::fs::File::create(&b).unwrap(),
            "[limits]\ndefault_ttl_seconds = 60"
        )
        .unwrap();
        let s = Settings::load_with_env(&[a, b], false).unwrap();
        assert_eq!(s.limits.max_ttl_seconds, 100);
        assert_eq!(s.limits.default_ttl_seconds, 60);
        assert_eq!(s.limits.max_attempts, 20);
    }

    #[test]
    fn an_unusable_proxy_list_or_scan_budget_is_refused_naming_its_key() {
        let dir = tempfile::tempdir().unwrap();
        for (body, key) in [
            (
                "[server]\ntrusted_proxies = [\"10.0.0.0/33\"]",
                "server.trusted_proxies",
            ),
            (
                "[server]\ntrusted_proxies = [\"proxy.example\"]",
                "server.trusted_proxies",
            ),
            ("[limits]\nlist_scan_budget = 0", "limits.list_scan_budget"),
        ] {
            let file = dir.path().join("site.toml");
            writeln!(std::fs::File::create(&file).unwrap(), "{body}").unwrap();
            let err = Settings::load_with_env(&[file], false)
                .unwrap_err()
                .to_string();
            assert!(err.contains(key), "{body}: {err}");
        }
        let file = dir.path().join("site.toml");
        writeln!(
            std::fs::File::create(&file).unwrap(),
            "[server]\ntrusted_proxies = [\"10.0.0.0/8\", \"::1\"]"
        )
        .unwrap();
        let s = Settings::load_with_env(&[file], false).unwrap();
        assert_eq!(s.server.trusted_proxies.len(), 2);
    }

    #[test]
    fn twilio_accounts_load_in_the_documented_shape() {
        let s = load_toml(
            "[[compat.twilio.accounts]]\naccount_sid = \"AC0123456789abcdef0123456789abcdef\"\nauth_token = \"t\"\ntenant = \"acme\"\n\n[[compat.twilio.accounts]]\naccount_sid = \"AC0123456789abcdef0123456789abcde0\"\nauth_token_sha256 = \"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\"\ntenant = \"beta\"\n",
        )
        .unwrap();
        let accounts = &s.compat.twilio.accounts;
        assert_eq!(accounts.len(), 2);
        assert_eq!(accounts[0].tenant, "acme");
        assert!(
            !format!("{:?}", accounts[0]).contains("\"t\""),
            "the token never prints"
        );
        assert!(Settings::development().compat.twilio.accounts.is_empty());
    }

    #[test]
    fn apiture_keys_load_and_a_bad_one_names_its_key() {
        let s = load_toml(
            "[[compat.apiture.api_keys]]\nkey = \"k1\"\ntenant = \"acme\"\n\n[[compat.apiture.api_keys]]\nkey_sha256 = \"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\"\ntenant = \"beta\"\n",
        )
        .unwrap();
        let keys = &s.compat.apiture.api_keys;
        assert_eq!(keys.len(), 2);
        assert!(
            !format!("{:?}", keys[0]).contains("k1"),
            "the key never prints"
        );
        for (body, key) in [
            ("tenant = \"a\"", "compat.apiture.api_keys.key"),
            (
                "key = \"k\"\nkey_sha256 = \"abc\"\ntenant = \"a\"",
                "compat.apiture.api_keys.key",
            ),
            (
                "key_sha256 = \"abc\"\ntenant = \"a\"",
                "compat.apiture.api_keys.key_sha256",
            ),
            (
                "key = \"k\"\ntenant = \"a/b\"",
                "compat.apiture.api_keys.tenant",
            ),
        ] {
            let err = load_toml(&format!("[[compat.apiture.api_keys]]\n{body}\n"))
                .unwrap_err()
                .to_string();
            assert!(err.contains(key), "{body}: {err}");
        }
    }

    #[test]
    fn a_bad_twilio_account_names_its_key() {
        let account = |body: &str| format!("[[compat.twilio.accounts]]\n{body}\n");
        let sid = "account_sid = \"AC0123456789abcdef0123456789abcdef\"";
        for (body, key) in [
            (
                "account_sid = \"AC0123\"\nauth_token = \"t\"\ntenant = \"a\"".to_string(),
                "compat.twilio.accounts.account_sid",
            ),
            (
                format!(
                    "{sid}\nauth_token = \"t\"\nauth_token_sha256 = \"{}\"\ntenant = \"a\"",
                    "0".repeat(64)
                ),
                "compat.twilio.accounts.auth_token",
            ),
            (
                format!("{sid}\ntenant = \"a\""),
                "compat.twilio.accounts.auth_token",
            ),
            (
                format!("{sid}\nauth_token_sha256 = \"abc\"\ntenant = \"a\""),
                "compat.twilio.accounts.auth_token_sha256",
            ),
            (
                format!("{sid}\nauth_token = \"t\"\ntenant = \"a/b\""),
                "compat.twilio.accounts.tenant",
            ),
        ] {
            let err = load_toml(&account(&body)).unwrap_err().to_string();
            assert!(err.contains(key), "{body}: {err}");
        }
        let twice = account(&format!("{sid}\nauth_token = \"t\"\ntenant = \"a\""));
        let err = load_toml(&format!("{twice}{twice}"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("listed twice"), "{err}");
    }

    #[test]
    fn a_bad_value_names_its_key() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.toml");
        writeln!(
            std::fs::File::create(&a).unwrap(),
            "[limits]\nmax_ttl_seconds = \"soon\""
        )
        .unwrap();
        let err = Settings::load_with_env(&[a], false)
            .unwrap_err()
            .to_string();
        assert!(err.contains("limits.max_ttl_seconds"), "{err}");
    }

    #[test]
    fn an_unknown_key_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.toml");
        writeln!(
            std::fs::File::create(&a).unwrap(),
            "[limits]\nmax_tll_seconds = 5"
        )
        .unwrap();
        let err = Settings::load_with_env(&[a], false)
            .unwrap_err()
            .to_string();
        assert!(err.contains("max_tll_seconds"), "{err}");
    }

    #[test]
    fn an_inconsistent_value_names_its_key() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.toml");
        writeln!(
            std::fs::File::create(&a).unwrap(),
            "[limits]\ndefault_ttl_seconds = 999999"
        )
        .unwrap();
        let err = Settings::load_with_env(&[a], false)
            .unwrap_err()
            .to_string();
        assert!(err.contains("limits.default_ttl_seconds"), "{err}");
    }

    fn load_toml(text: &str) -> Result<Settings, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.toml");
        writeln!(std::fs::File::create(&a).unwrap(), "{text}").unwrap();
        Settings::load_with_env(&[a], false)
    }

    #[test]
    fn relying_parties_load_per_tenant_and_a_bad_one_names_its_key() {
        let s = Settings::development();
        assert_eq!(s.webauthn.relying_parties[0].id, "localhost");
        assert_eq!(s.webauthn.enrollment_ttl_seconds, 600);
        let s = load_toml(
            "[[webauthn.tenants.acme.relying_parties]]\nid = \"acme.example\"\n\
             origin = \"https://login.acme.example\"\nname = \"Acme\"",
        )
        .unwrap();
        assert_eq!(
            s.webauthn.tenants["acme"].relying_parties[0].origin,
            "https://login.acme.example"
        );
        for (text, key) in [
            (
                "[[webauthn.relying_parties]]\nid = \"example.com\"\norigin = \"https://example.org\"\nname = \"x\"",
                "webauthn.relying_parties",
            ),
            (
                "[[webauthn.tenants.acme.relying_parties]]\nid = \"a.example\"\norigin = \"not a url\"\nname = \"x\"",
                "webauthn.tenants",
            ),
            ("[webauthn]\nenrollment_ttl_seconds = 0", "webauthn.enrollment_ttl_seconds"),
        ] {
            let err = load_toml(text).unwrap_err().to_string();
            assert!(err.contains(key), "{err}");
        }
    }

    #[test]
    fn delivery_keys_load_with_their_defaults() {
        let s = Settings::development();
        assert_eq!(s.email.smtp_host, "127.0.0.1");
        assert_eq!(s.email.smtp_port, 25);
        assert_eq!(s.email.tls, SmtpTls::None);
        assert!(s.email.username.is_empty() && s.email.password.is_empty());
        assert_eq!(s.email.from, "challenge-server <no-reply@localhost>");
        assert_eq!(s.email.timeout_ms, 10_000);
        assert_eq!(s.email.pool_max_size, 8);
        assert_eq!(s.sms.gateway_url, "");
        assert_eq!(s.sms.format, SmsFormat::Json);
        assert!(s.sms.signing_secret.is_empty());
        assert_eq!(s.sms.timeout_ms, 10_000);
        assert_eq!(s.sms.max_length, 1600);
        assert_eq!(s.webhooks.timeout_ms, 5000);
        assert_eq!(s.webhooks.max_retries, 5);
        assert_eq!(s.webhooks.backoff_ms, 500);
    }

    #[test]
    fn a_relay_with_starttls_and_credentials_loads() {
        let s = load_toml(
            "[email]\nsmtp_host = \"smtp.example.com\"\nsmtp_port = 587\ntls = \"starttls\"\n\
             username = \"mailer\"\npassword = \"hunter2\"\nfrom = \"Acme <no-reply@acme.example>\"",
        )
        .unwrap();
        assert_eq!(s.email.tls, SmtpTls::Starttls);
        assert_eq!(s.email.password.expose(), "hunter2");
        assert!(!format!("{:?}", s.email).contains("hunter2"));
    }

    #[test]
    fn a_bad_tls_value_names_email_tls() {
        let err = load_toml("[email]\ntls = \"ssl\"").unwrap_err().to_string();
        assert!(err.contains("email.tls"), "{err}");
        assert!(err.contains("starttls"), "{err}");
    }

    #[test]
    fn bad_delivery_values_name_their_keys() {
        for (text, key) in [
            ("[email]\nfrom = \"not a mailbox\"", "email.from"),
            ("[email]\npool_max_size = 0", "email.pool_max_size"),
            ("[email]\npassword = \"x\"", "email.password"),
            (
                "[sms]\ngateway_url = \"ftp://gw.example\"",
                "sms.gateway_url",
            ),
            (
                "[sms]\ngateway_url = \"gw.example/send\"",
                "sms.gateway_url",
            ),
            (
                "[sms]\ngateway_url = \"https://gw.example\"\nformat = \"twilio\"",
                "sms.from",
            ),
            ("[sms]\nformat = \"xml\"", "sms.format"),
            (
                "[sms]\ngateway_url = \"https://gw.example\"\nmax_length = 0",
                "sms.max_length",
            ),
            ("[webhooks]\nmax_retries = 99", "webhooks.max_retries"),
            ("[webhooks]\nbackoff_ms = 0", "webhooks.backoff_ms"),
            ("[webhooks]\nretries = 3", "retries"),
        ] {
            let err = load_toml(text).unwrap_err().to_string();
            assert!(err.contains(key), "{text}: {err}");
        }
    }

    #[test]
    fn empty_host_and_gateway_turn_channels_off_without_other_checks() {
        let s = load_toml("[email]\nsmtp_host = \"\"\npool_max_size = 0\n[sms]\nmax_length = 0")
            .unwrap();
        assert!(s.email.smtp_host.is_empty());
    }

    #[test]
    fn a_missing_file_is_an_error() {
        let err = Settings::load_with_env(&[PathBuf::from("/nonexistent.toml")], false);
        assert!(matches!(err, Err(ConfigError::Missing(_))));
    }
}
