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

/// Signs the short-lived tokens that one-time-use actions carry, and publishes the
/// verification key as a JWKS. ES256 by default, with a key generated on first start
/// into the data directory; RS256 from a configured key; HS256 from a configured secret
/// (then nothing is published: a receiver must share the secret).
pub struct ActionSigner {
    algorithm: jsonwebtoken::Algorithm,
    kid: String,
    key: EncodingKey,
    jwk: Option<serde_json::Value>,
    ttl_seconds: u64,
    issuer: String,
}

/// The claims of a minted action token.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct ActionClaims {
    pub iss: String,
    pub sub: String,
    pub aud: String,
    pub tenant: String,
    /// The actor's organisation, when the challenge names one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org: Option<String>,
    pub scope: String,
    pub jti: String,
    pub iat: u64,
    pub exp: u64,
    pub challenge_id: String,
}

impl ActionSigner {
    pub fn from_settings(settings: &crate::config::Settings) -> Result<Self, String> {
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        use base64::Engine;
        use sha2::Digest;

        let a = &settings.actions;
        let b64 = |bytes: &[u8]| URL_SAFE_NO_PAD.encode(bytes);
        let (algorithm, key, public, jwk_base) = match a.signing_algorithm.as_str() {
            "HS256" => (
                jsonwebtoken::Algorithm::HS256,
                EncodingKey::from_secret(a.signing_secret.expose().as_bytes()),
                a.signing_secret.expose().as_bytes().to_vec(),
                None,
            ),
            "RS256" => {
                use rsa::pkcs8::DecodePrivateKey;
                use rsa::traits::PublicKeyParts;
                let path = a
                    .signing_key_file
                    .as_ref()
                    .ok_or("actions.signing_key_file is required for RS256")?;
                let pem = std::fs::read_to_string(path)
                    .map_err(|e| format!("actions.signing_key_file: {e}"))?;
                let private = rsa::RsaPrivateKey::from_pkcs8_pem(&pem)
                    .map_err(|e| format!("actions.signing_key_file: {e}"))?;
                let (n, e) = (private.n().to_bytes_be(), private.e().to_bytes_be());
                let key = EncodingKey::from_rsa_pem(pem.as_bytes()).map_err(|e| e.to_string())?;
                let public = [n.clone(), e.clone()].concat();
                (
                    jsonwebtoken::Algorithm::RS256,
                    key,
                    public,
                    Some(json!({"kty": "RSA", "n": b64(&n), "e": b64(&e)})),
                )
            }
            _ => {
                use p256::pkcs8::{DecodePrivateKey, EncodePrivateKey, LineEnding};
                let pem = match &a.signing_key_file {
                    Some(path) => std::fs::read_to_string(path)
                        .map_err(|e| format!("actions.signing_key_file: {e}"))?,
                    None => {
                        generated_es256_key(settings.data_dir(), |secret: &p256::SecretKey| {
                            secret
                                .to_pkcs8_pem(LineEnding::LF)
                                .map(|p| p.to_string())
                                .map_err(|e| e.to_string())
                        })?
                    }
                };
                let secret = p256::SecretKey::from_pkcs8_pem(&pem)
                    .map_err(|e| format!("ES256 signing key: {e}"))?;
                let point = p256::elliptic_curve::sec1::ToEncodedPoint::to_encoded_point(
                    &secret.public_key(),
                    false,
                );
                let (x, y) = (
                    point.x().ok_or("bad EC key")?.to_vec(),
                    point.y().ok_or("bad EC key")?.to_vec(),
                );
                let key = EncodingKey::from_ec_pem(pem.as_bytes()).map_err(|e| e.to_string())?;
                (
                    jsonwebtoken::Algorithm::ES256,
                    key,
                    [x.clone(), y.clone()].concat(),
                    Some(json!({"kty": "EC", "crv": "P-256", "x": b64(&x), "y": b64(&y)})),
                )
            }
        };
        let kid = if a.signing_kid.is_empty() {
            hex::encode(&sha2::Sha256::digest(&public)[..8])
        } else {
            a.signing_kid.clone()
        };
        let jwk = jwk_base.map(|mut j| {
            j["kid"] = json!(kid);
            j["use"] = json!("sig");
            j["alg"] = json!(format!("{algorithm:?}"));
            j
        });
        Ok(ActionSigner {
            algorithm,
            kid,
            key,
            jwk,
            ttl_seconds: a.token_ttl_seconds,
            issuer: settings.server.public_base_url.clone(),
        })
    }

    /// A token for `subject` (of organisation `org`, when named) of `tenant` with
    /// exactly `scopes`, for the host `audience`.
    pub fn sign(
        &self,
        subject: &str,
        org: Option<&str>,
        tenant: &str,
        scopes: &[Box<str>],
        audience: &str,
        challenge_id: &str,
    ) -> Result<String, String> {
        let now = jsonwebtoken::get_current_timestamp();
        let mut jti = [0u8; 16];
        rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut jti);
        let claims = ActionClaims {
            iss: self.issuer.clone(),
            sub: subject.to_string(),
            aud: audience.to_string(),
            tenant: tenant.to_string(),
            org: org.map(str::to_string),
            scope: scopes.join(" "),
            jti: hex::encode(jti),
            iat: now,
            exp: now + self.ttl_seconds,
            challenge_id: challenge_id.to_string(),
        };
        let mut header = Header::new(self.algorithm);
        header.kid = Some(self.kid.clone());
        encode(&header, &claims, &self.key).map_err(|e| e.to_string())
    }

    /// `{"keys": [...]}`: the public key (none for HS256).
    pub fn jwks(&self) -> serde_json::Value {
        json!({"keys": self.jwk.iter().collect::<Vec<_>>()})
    }
}

/// Reads `<data_dir>/action-signing-key.pem`, creating it (mode 0600) on first use.
fn generated_es256_key(
    dir: &std::path::Path,
    to_pem: impl Fn(&p256::SecretKey) -> Result<String, String>,
) -> Result<String, String> {
    use std::io::Write;
    let path = dir.join("action-signing-key.pem");
    match std::fs::read_to_string(&path) {
        Ok(pem) => Ok(pem),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
            let secret = p256::SecretKey::random(&mut p256::elliptic_curve::rand_core::OsRng);
            let pem = to_pem(&secret)?;
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let mut file = options
                .open(&path)
                .map_err(|e| format!("{}: {e}", path.display()))?;
            file.write_all(pem.as_bytes()).map_err(|e| e.to_string())?;
            file.sync_all().map_err(|e| e.to_string())?;
            Ok(pem)
        }
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}
