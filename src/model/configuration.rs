//! A tenant's runtime configuration: the properties an operator may change through the
//! configuration API without a restart. The file's `[limits]` give the initial values
//! (version 0); once a tenant's configuration is written, the stored values win. The
//! file's maxima stay the service-wide caps no tenant may exceed.

use std::ops::RangeInclusive;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::clock::Millis;
use crate::config::Limits;

/// One-time codes are this many characters long.
pub const CODE_LENGTH: RangeInclusive<u32> = 4..=10;
/// Longest retention of terminal challenges anyone may set: one year.
pub const MAX_RETENTION_SECONDS: u64 = 365 * 24 * 3600;
/// Most failed anonymous answers per challenge per minute anyone may allow.
pub const MAX_ANONYMOUS_FAILURES: u32 = 1000;
/// Most entries of an allow-list of action scopes (a tenant's or a policy's).
pub const MAX_ALLOWED_ACTION_SCOPES: usize = 64;

/// Declares a struct that holds the tenant properties, followed by its own fields: the
/// one list of the properties, their types and their meaning. [`Properties`] is exactly
/// the list (the configuration API's body); the file's [`Limits`] is the list plus the
/// bounds no tenant may change (`config/default.toml`'s `[limits]`). Both keep every
/// property a direct field, so file keys, environment variables and JSON fields stay the
/// property names. `#[serde(flatten)]` would say the same with a nested struct, but a
/// flattened field is deserialized from a buffer that forgets its name: a bad value
/// would no longer fail start-up naming its key. Also declares `From<&Struct> for
/// Properties`.
macro_rules! with_tenant_properties {
    ($(#[$attr:meta])* pub struct $name:ident { $($field:tt)* }) => {
        $(#[$attr])*
        pub struct $name {
            /// TTL when neither the request nor its policy names one; ≤ `max_ttl_seconds`.
            pub default_ttl_seconds: u64,
            /// Largest TTL; ≤ the server's `limits.max_ttl_seconds`.
            pub max_ttl_seconds: u64,
            /// `max_attempts` when neither the request nor its policy names one; ≤ `max_attempts`.
            pub default_max_attempts: u32,
            /// Largest `max_attempts`; ≤ the server's `limits.max_attempts`.
            pub max_attempts: u32,
            /// One-time code length when the policy names none (4–10).
            pub default_code_length: u32,
            /// How long terminal challenges stay readable when their policy says nothing.
            pub retention_seconds: u64,
            /// Live challenges of the tenant; ≤ the server's `limits.max_live_challenges`.
            pub max_live_challenges: u64,
            /// Longest long-poll `wait`; ≤ the server's `limits.long_poll_max_seconds`.
            pub long_poll_max_seconds: u64,
            /// Anonymous answers with an unrecognized token tolerated per challenge per minute.
            pub anonymous_failures_per_challenge_per_minute: u32,
            /// Scopes this tenant's one-time-use actions may ask for in their minted
            /// tokens, besides the server's `actions.allowed_scopes` (and a policy's own).
            #[serde(default)]
            pub allowed_action_scopes: Vec<String>,
            $($field)*
        }

        impl From<&$name> for $crate::model::configuration::Properties {
            fn from(p: &$name) -> Self {
                $crate::model::configuration::Properties {
                    default_ttl_seconds: p.default_ttl_seconds,
                    max_ttl_seconds: p.max_ttl_seconds,
                    default_max_attempts: p.default_max_attempts,
                    max_attempts: p.max_attempts,
                    default_code_length: p.default_code_length,
                    retention_seconds: p.retention_seconds,
                    max_live_challenges: p.max_live_challenges,
                    long_poll_max_seconds: p.long_poll_max_seconds,
                    anonymous_failures_per_challenge_per_minute: p
                        .anonymous_failures_per_challenge_per_minute,
                    allowed_action_scopes: p.allowed_action_scopes.clone(),
                }
            }
        }
    };
}
pub(crate) use with_tenant_properties;

with_tenant_properties! {
    /// The runtime properties, all required (a PUT replaces every one).
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
    #[serde(deny_unknown_fields)]
    pub struct Properties {}
}

impl Properties {
    /// The file's values.
    pub fn from_limits(limits: &Limits) -> Self {
        Properties::from(limits)
    }

    /// These properties held to the file's caps, which may have been lowered since they
    /// were stored; defaults are lowered with their maxima.
    pub fn capped(mut self, limits: &Limits) -> Self {
        self.max_ttl_seconds = self.max_ttl_seconds.min(limits.max_ttl_seconds);
        self.default_ttl_seconds = self.default_ttl_seconds.min(self.max_ttl_seconds);
        self.max_attempts = self.max_attempts.min(limits.max_attempts);
        self.default_max_attempts = self.default_max_attempts.min(self.max_attempts);
        self.max_live_challenges = self.max_live_challenges.min(limits.max_live_challenges);
        self.long_poll_max_seconds = self.long_poll_max_seconds.min(limits.long_poll_max_seconds);
        self
    }
}

/// A tenant's configuration in effect.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantConfig {
    pub properties: Properties,
    /// 0 until the first PUT, +1 per PUT; the optimistic-locking counter (the ETag).
    pub version: u64,
    /// When it was last PUT; `None` at version 0.
    pub updated_at: Option<Millis>,
}

impl TenantConfig {
    /// A tenant that never wrote its configuration: the file's values.
    pub fn initial(limits: &Limits) -> Self {
        TenantConfig {
            properties: Properties::from_limits(limits),
            version: 0,
            updated_at: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Settings;

    #[test]
    fn stored_values_above_lowered_caps_are_held_to_them() {
        let mut limits = Settings::development().limits;
        let stored = Properties {
            default_ttl_seconds: 900,
            max_ttl_seconds: 1000,
            ..Properties::from_limits(&limits)
        };
        limits.max_ttl_seconds = 600;
        let capped = stored.capped(&limits);
        assert_eq!(capped.max_ttl_seconds, 600);
        assert_eq!(capped.default_ttl_seconds, 600);
    }
}
