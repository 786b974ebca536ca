//! Signs tokens with a configured key: development and operations tokens for the
//! `token` subcommand. Uses the first key that can sign (an HS secret, or an RS/ES key
//! with a private key configured).

use jsonwebtoken::{encode, EncodingKey, Header};
use serde_json::json;

use super::jwt::{is_ec, is_hmac, parse_algorithm};
use crate::config::AuthSettings;

pub fn mint(
    auth: &AuthSettings,
    tenant: &str,
    scopes: &str,
    ttl_seconds: u64,
    subject: &str,
) -> Result<String, String> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|e| e.to_string())?
        .as_secs();
    let mut claims = json!({
        auth.tenant_claim.clone(): tenant,
        "sub": subject,
        "scope": scopes,
        "iat": now,
        "exp": now + ttl_seconds,
    });
    if !auth.issuer.is_empty() {
        claims["iss"] = json!(auth.issuer);
    }
    if !auth.audience.is_empty() {
        claims["aud"] = json!(auth.audience);
    }
    for k in &auth.keys {
        let Some(alg) = parse_algorithm(&k.algorithm) else {
            continue;
        };
        let key = if is_hmac(alg) {
            match &k.secret {
                Some(s) => EncodingKey::from_secret(s.expose().as_bytes()),
                None => continue,
            }
        } else {
            let pem = match (&k.private_key_pem, &k.private_key_file) {
                (Some(p), _) => p.expose().as_bytes().to_vec(),
                (None, Some(path)) => std::fs::read(path)
                    .map_err(|e| format!("cannot read {}: {e}", path.display()))?,
                (None, None) => continue,
            };
            if is_ec(alg) {
                EncodingKey::from_ec_pem(&pem).map_err(|e| e.to_string())?
            } else {
                EncodingKey::from_rsa_pem(&pem).map_err(|e| e.to_string())?
            }
        };
        let mut header = Header::new(alg);
        header.kid = Some(k.kid.clone());
        return encode(&header, &claims, &key).map_err(|e| e.to_string());
    }
    Err("no configured key can sign: add an HS secret or a private key to [[auth.keys]]".into())
}
