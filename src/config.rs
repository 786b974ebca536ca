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
    pub log: LogSettings,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    pub listen: SocketAddr,
    pub workers: usize,
    pub body_limit_bytes: usize,
    pub shutdown_timeout_seconds: u64,
    pub public_base_url: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageSettings {
    pub data_dir: PathBuf,
    pub cache_capacity_bytes: u64,
    pub secret: Secret,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EngineSettings {
    pub arbiters: usize,
}

/// Bounds applied to every request; see `config/default.toml` for each key's meaning. The
/// values a tenant may change at run time are only initial values
/// ([`crate::model::TenantConfig`]); the maxima are also caps on what a tenant may set.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    pub default_ttl_seconds: u64,
    pub max_ttl_seconds: u64,
    pub default_max_attempts: u32,
    pub max_attempts: u32,
    pub default_code_length: u32,
    pub retention_seconds: u64,
    pub max_live_challenges: u64,
    pub long_poll_max_seconds: u64,
    pub max_actors: usize,
    pub anonymous_failures_per_challenge_per_minute: u32,
    pub anonymous_answers_per_ip_per_minute: u32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSettings {
    pub algorithms: Vec<String>,
    pub tenant_claim: String,
    pub issuer: String,
    pub audience: String,
    pub leeway_seconds: u64,
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
        let invalid = |key, message: &str| {
            Err(ConfigError::Invalid {
                key,
                message: message.to_string(),
            })
        };
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
        if l.max_live_challenges == 0 {
            return invalid("limits.max_live_challenges", "must be at least 1");
        }
        if self.server.body_limit_bytes < 1024 {
            return invalid("server.body_limit_bytes", "must be at least 1024");
        }
        if !self.storage.secret.is_empty() {
            let ok = self.storage.secret.expose().len() == 64
                && hex::decode(self.storage.secret.expose()).is_ok();
            if !ok {
                return invalid("storage.secret", "must be 64 hex characters (32 bytes)");
            }
        }
        if self.auth.tenant_claim.is_empty() {
            return invalid("auth.tenant_claim", "must not be empty");
        }
        if self.auth.keys.is_empty() {
            return invalid("auth.keys", "at least one verification key is required");
        }
        // Algorithms and key material are checked when the verifier is built
        // (auth::jwt::Verifier::from_settings), which names the key by its kid.
        Ok(())
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

    #[test]
    fn a_missing_file_is_an_error() {
        let err = Settings::load_with_env(&[PathBuf::from("/nonexistent.toml")], false);
        assert!(matches!(err, Err(ConfigError::Missing(_))));
    }
}
