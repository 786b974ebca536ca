//! Policies: named, per-tenant presets a challenge can be created from (its type, TTL and
//! attempt bounds, code format, resend rules, retention, delivery templates and
//! conditions). A challenge copies what it takes from its policy at create and keeps a
//! [`PolicyRef`] to the version it used, so a later change to the policy never reaches
//! a live challenge.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use utoipa::ToSchema;

use super::challenge::ChallengeType;
use crate::clock::Millis;

/// A policy's name, unique in its tenant: `[a-z0-9][a-z0-9._-]{0,63}`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PolicyAlias(Box<str>);

impl PolicyAlias {
    pub const MAX_LEN: usize = 64;

    pub fn parse(s: &str) -> Option<Self> {
        let bytes = s.as_bytes();
        let ok = !bytes.is_empty()
            && bytes.len() <= Self::MAX_LEN
            && (bytes[0].is_ascii_lowercase() || bytes[0].is_ascii_digit())
            && bytes.iter().all(|&b| {
                b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
            });
        ok.then(|| PolicyAlias(s.into()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PolicyAlias {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for PolicyAlias {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PolicyAlias({})", &self.0)
    }
}

impl Serialize for PolicyAlias {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for PolicyAlias {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        PolicyAlias::parse(&s).ok_or_else(|| serde::de::Error::custom("invalid policy alias"))
    }
}

/// Characters of a one-time code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CodeAlphabet {
    /// `0-9`.
    Digits,
    /// Upper-case letters and digits without the look-alikes `0 O 1 I L`.
    Alphanumeric,
}

/// What a resend delivers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ResendMode {
    /// The same code or link again.
    Same,
    /// A new code or link; the previous one stops working.
    Rotate,
}

/// One locale's delivery texts. Email types use `subject`, `text` and `html`; `sms_otp`
/// uses `sms`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Template {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub html: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sms: Option<String>,
}

/// Delivery templates per locale; `default_locale` must be one of `locales`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Templates {
    pub default_locale: String,
    pub locales: BTreeMap<String, Template>,
}

/// What a create request's recipient must satisfy (enforced where challenges are
/// delivered).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Conditions {
    /// Allowed email domains (email types), lower-case, e.g. `example.com`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email_domains: Option<Vec<String>>,
    /// Allowed phone number prefixes (`sms_otp`): `+` and 1–4 digits, e.g. `+44`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone_prefixes: Option<Vec<String>>,
}

/// Everything an operator writes in a policy (a PUT replaces all of it). Absent values
/// fall back to the tenant's configuration when a challenge is created.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicySpec {
    #[serde(rename = "type")]
    pub kind: ChallengeType,
    /// TTL of a challenge whose request names none.
    #[serde(default)]
    pub ttl_seconds: Option<u64>,
    /// Largest TTL a request may ask for (further capped by the tenant's configuration).
    #[serde(default)]
    pub max_ttl_seconds: Option<u64>,
    /// Wrong answers tolerated; also the most a request may ask for.
    #[serde(default)]
    pub max_attempts: Option<u32>,
    /// OTP types: 4–10 characters.
    #[serde(default)]
    pub code_length: Option<u32>,
    /// OTP types.
    #[serde(default)]
    pub code_alphabet: Option<CodeAlphabet>,
    /// Delivered types: seconds between resends.
    #[serde(default)]
    pub resend_cooldown_seconds: Option<u64>,
    /// Delivered types: resends allowed per challenge.
    #[serde(default)]
    pub max_resends: Option<u32>,
    /// Delivered types.
    #[serde(default)]
    pub resend_mode: Option<ResendMode>,
    /// How long terminal challenges stay readable.
    #[serde(default)]
    pub retention_seconds: Option<u64>,
    /// A new challenge for a user cancels that user's live ones from this policy.
    #[serde(default)]
    pub one_active_per_user: bool,
    /// Delivered types.
    #[serde(default)]
    pub templates: Option<Templates>,
    /// Delivered types.
    #[serde(default)]
    pub conditions: Option<Conditions>,
    /// `one_time_use_action`: scopes its actions may ask for in their minted tokens,
    /// besides the server's `actions.allowed_scopes` and the tenant's
    /// `allowed_action_scopes`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_action_scopes: Option<Vec<String>>,
    /// Where state changes of the policy's challenges are posted when a create names no
    /// `callback_url` of its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callback_url: Option<String>,
}

/// A stored policy: the operator's spec plus what the server keeps about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    pub alias: PolicyAlias,
    pub spec: PolicySpec,
    /// 1 at create, +1 per replace; the optimistic-locking counter (the ETag).
    pub version: u64,
    pub created_at: Millis,
    pub updated_at: Millis,
}

/// Which policy, at which version, a challenge was created from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PolicyRef {
    #[schema(value_type = String)]
    pub alias: PolicyAlias,
    pub version: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aliases_are_restricted() {
        for ok in ["a", "login-otp", "0", "a.b_c-d", &"a".repeat(64)] {
            assert!(PolicyAlias::parse(ok).is_some(), "{ok}");
        }
        for bad in [
            "",
            "-a",
            ".a",
            "_a",
            "Login",
            "a b",
            "a/b",
            "é",
            &"a".repeat(65),
        ] {
            assert!(PolicyAlias::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn a_spec_defaults_absent_fields() {
        let spec: PolicySpec = serde_json::from_str(r#"{"type": "token"}"#).unwrap();
        assert_eq!(spec.kind, ChallengeType::Token);
        assert!(!spec.one_active_per_user);
        assert!(spec.ttl_seconds.is_none() && spec.templates.is_none());
        let unknown = serde_json::from_str::<PolicySpec>(r#"{"type": "token", "ttl": 5}"#);
        assert!(unknown
            .unwrap_err()
            .to_string()
            .starts_with("unknown field"));
    }
}
