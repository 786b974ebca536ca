//! Verifies bearer JWTs. The rules: the header's `alg` must be on the configured
//! allow-list (so `none` never is); the key is chosen by `kid` when the header has one,
//! else among the keys of exactly that algorithm — a key is only ever used with its own
//! algorithm, which rules out HS/RS confusion; `exp` is required; `iss` and `aud` are
//! checked when configured; with `auth.max_token_lifetime_seconds`, `iat` is required and
//! `exp - iat` may not exceed it; the tenant claim must name a valid tenant.

use std::str::FromStr;

use dashmap::DashMap;
use jsonwebtoken::{decode, decode_header, Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};

use super::principal::Principal;
use super::scopes::Scopes;
use crate::config::{AuthSettings, KeySettings};
use crate::model::TenantId;

/// Why a bearer token was refused. Clients see only "unauthorized"; the variant is for
/// logs and never includes the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("no bearer token")]
    Missing,
    #[error("malformed bearer token")]
    Malformed,
    #[error("algorithm not allowed")]
    AlgorithmNotAllowed,
    #[error("no key for this token")]
    UnknownKey,
    #[error("token rejected: {0}")]
    Invalid(String),
    #[error("tenant claim missing or invalid")]
    Tenant,
    /// `exp - iat` is longer than `auth.max_token_lifetime_seconds`, or `iat` is missing.
    #[error("token lifetime exceeds {0} seconds")]
    LifetimeExceeded(u64),
}

struct VerificationKey {
    kid: String,
    algorithm: Algorithm,
    key: DecodingKey,
}

/// Verified tokens are remembered until their `exp`, so a service that reuses its token
/// pays for the signature check once. Bounded: past this many entries it starts over.
const CACHE_CAPACITY: usize = 10_000;

struct Verified {
    principal: Principal,
    exp: u64,
}

pub struct Verifier {
    cache: DashMap<Box<str>, Verified>,
    keys: Vec<VerificationKey>,
    allowed: Vec<Algorithm>,
    tenant_claim: String,
    issuer: Option<String>,
    audience: Option<String>,
    leeway: u64,
    /// `auth.max_token_lifetime_seconds`; 0 = no limit.
    max_lifetime: u64,
}

pub(crate) fn parse_algorithm(name: &str) -> Option<Algorithm> {
    let alg = Algorithm::from_str(name).ok()?;
    // EdDSA is not offered: keys are configured as HS/RS/PS/ES only.
    (alg != Algorithm::EdDSA).then_some(alg)
}

pub(crate) fn is_hmac(alg: Algorithm) -> bool {
    matches!(alg, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512)
}

pub(crate) fn is_ec(alg: Algorithm) -> bool {
    matches!(alg, Algorithm::ES256 | Algorithm::ES384)
}

fn read_pem(
    inline: &Option<String>,
    file: &Option<std::path::PathBuf>,
) -> Result<Option<Vec<u8>>, String> {
    if let Some(pem) = inline {
        return Ok(Some(pem.as_bytes().to_vec()));
    }
    if let Some(path) = file {
        return std::fs::read(path)
            .map(Some)
            .map_err(|e| format!("cannot read {}: {e}", path.display()));
    }
    Ok(None)
}

impl Verifier {
    /// Builds the verifier; an error names the offending key (`auth.keys[kid=…]`).
    pub fn from_settings(s: &AuthSettings) -> Result<Verifier, String> {
        let mut allowed = Vec::new();
        for name in &s.algorithms {
            let alg = parse_algorithm(name).ok_or_else(|| {
                format!("configuration key `auth.algorithms`: unknown algorithm {name:?}")
            })?;
            allowed.push(alg);
        }
        let mut keys = Vec::new();
        for k in &s.keys {
            keys.push(
                Self::key(k)
                    .map_err(|e| format!("configuration key `auth.keys` (kid {:?}): {e}", k.kid))?,
            );
        }
        Ok(Verifier {
            cache: DashMap::new(),
            keys,
            allowed,
            tenant_claim: s.tenant_claim.clone(),
            issuer: (!s.issuer.is_empty()).then(|| s.issuer.clone()),
            audience: (!s.audience.is_empty()).then(|| s.audience.clone()),
            leeway: s.leeway_seconds,
            max_lifetime: s.max_token_lifetime_seconds,
        })
    }

    fn key(k: &KeySettings) -> Result<VerificationKey, String> {
        let algorithm = parse_algorithm(&k.algorithm)
            .ok_or_else(|| format!("unknown algorithm {:?}", k.algorithm))?;
        let key = if is_hmac(algorithm) {
            let secret = k.secret.as_ref().ok_or("an HS key needs `secret`")?;
            if secret.expose().len() < 32 {
                return Err("an HS secret must be at least 32 bytes".into());
            }
            DecodingKey::from_secret(secret.expose().as_bytes())
        } else {
            let pem = read_pem(&k.public_key_pem, &k.public_key_file)?
                .ok_or("an RS/PS/ES key needs `public_key_pem` or `public_key_file`")?;
            if is_ec(algorithm) {
                DecodingKey::from_ec_pem(&pem).map_err(|e| format!("bad EC public key: {e}"))?
            } else {
                DecodingKey::from_rsa_pem(&pem).map_err(|e| format!("bad RSA public key: {e}"))?
            }
        };
        Ok(VerificationKey {
            kid: k.kid.clone(),
            algorithm,
            key,
        })
    }

    pub fn verify(&self, token: &str) -> Result<Principal, AuthError> {
        let now = jsonwebtoken::get_current_timestamp();
        if let Some(hit) = self.cache.get(token) {
            if hit.exp > now {
                return Ok(hit.principal.clone());
            }
        }
        let (principal, exp) = self.verify_signature(token)?;
        if exp > now {
            if self.cache.len() >= CACHE_CAPACITY {
                self.cache.clear();
            }
            self.cache.insert(
                token.into(),
                Verified {
                    principal: principal.clone(),
                    exp,
                },
            );
        }
        Ok(principal)
    }

    /// Verifies a token as [`Verifier::verify`] does, but takes the tenant from the first
    /// of `tenant_claims` the token carries (a vendor face whose tokens name the tenant
    /// otherwise, e.g. Agilicus' `org`). Not cached: the cache holds the native reading.
    pub fn verify_with_tenant_claims(
        &self,
        token: &str,
        tenant_claims: &[String],
    ) -> Result<Principal, AuthError> {
        let (claims, _) = self.verify_claims(token)?;
        let tenant = tenant_claims
            .iter()
            .find_map(|name| claims.get(name).and_then(Value::as_str))
            .and_then(TenantId::parse)
            .ok_or(AuthError::Tenant)?;
        Ok(Self::principal_of(&claims, tenant))
    }

    fn verify_signature(&self, token: &str) -> Result<(Principal, u64), AuthError> {
        let (claims, exp) = self.verify_claims(token)?;
        Ok((self.principal(claims)?, exp))
    }

    /// The claims of a token whose signature, algorithm, lifetime, issuer and audience
    /// hold, and its `exp`.
    fn verify_claims(&self, token: &str) -> Result<(Map<String, Value>, u64), AuthError> {
        let header = decode_header(token).map_err(|_| AuthError::Malformed)?;
        if !self.allowed.contains(&header.alg) {
            return Err(AuthError::AlgorithmNotAllowed);
        }
        let mut validation = Validation::new(header.alg);
        let mut required = vec!["exp"];
        if self.audience.is_some() {
            required.push("aud");
        }
        if self.issuer.is_some() {
            required.push("iss");
        }
        validation.set_required_spec_claims(&required);
        validation.leeway = self.leeway;
        validation.validate_nbf = true;
        match &self.audience {
            Some(aud) => validation.set_audience(&[aud]),
            None => validation.validate_aud = false,
        }
        if let Some(iss) = &self.issuer {
            validation.set_issuer(&[iss]);
        }
        let candidates = self.keys.iter().filter(|k| {
            k.algorithm == header.alg && header.kid.as_ref().is_none_or(|kid| *kid == k.kid)
        });
        let mut last = AuthError::UnknownKey;
        for candidate in candidates {
            match decode::<Map<String, Value>>(token, &candidate.key, &validation) {
                Ok(data) => {
                    let exp = data.claims.get("exp").and_then(Value::as_u64).unwrap_or(0);
                    if self.max_lifetime > 0 {
                        let iat = data.claims.get("iat").and_then(Value::as_u64);
                        if iat.is_none_or(|iat| exp.saturating_sub(iat) > self.max_lifetime) {
                            return Err(AuthError::LifetimeExceeded(self.max_lifetime));
                        }
                    }
                    return Ok((data.claims, exp));
                }
                Err(e) => last = AuthError::Invalid(e.to_string()),
            }
        }
        Err(last)
    }

    fn principal(&self, claims: Map<String, Value>) -> Result<Principal, AuthError> {
        let tenant = claims
            .get(&self.tenant_claim)
            .and_then(Value::as_str)
            .and_then(TenantId::parse)
            .ok_or(AuthError::Tenant)?;
        Ok(Self::principal_of(&claims, tenant))
    }

    /// The principal of verified claims, for `tenant`.
    fn principal_of(claims: &Map<String, Value>, tenant: TenantId) -> Principal {
        let mut scopes = Scopes::default();
        if let Some(Value::String(s)) = claims.get("scope") {
            scopes = Scopes::from_names(s.split_ascii_whitespace());
        }
        if let Some(Value::Array(list)) = claims.get("scp") {
            let more = Scopes::from_names(list.iter().filter_map(Value::as_str));
            for scope in super::scopes::Scope::ALL {
                if more.contains(scope) {
                    scopes.insert(scope);
                }
            }
        }
        let subject = claims
            .get("sub")
            .and_then(Value::as_str)
            .map(std::sync::Arc::from);
        Principal {
            tenant,
            subject,
            scopes,
        }
    }
}
