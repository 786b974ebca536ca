//! WebAuthn factors on `webauthn-rs` (the relying-party crate of kanidm and
//! vaultwarden): the relying parties a tenant may use, from `[webauthn]` in config, and
//! the two ceremonies — registration (enrollment: creation options out, attestation in)
//! and authentication (a challenge: request options out, assertion in). Nothing here
//! verifies a signature or parses CBOR itself: the crate does, over openssl.
//!
//! Ceremony state never leaves the server. A registration's state is sealed to its
//! factor (`seal.rs`) and kept on the unverified factor until it expires; an
//! authentication's state is kept in the challenge's snapshot. Both are the crate's own
//! serialised state (`danger-allow-state-serialisation`), stored as JSON text.
//!
//! What is kept of a registered credential is its id, the crate's `Passkey` (public
//! key, counter, backup flags) as JSON, and the counter and flags beside it for reading.
//! An assertion is accepted only if its signature counter moves forward from the
//! stored one (or both are 0, for authenticators without a counter, as synced passkeys
//! are): [`counter_advances`].

use std::collections::HashMap;
use std::sync::Arc;

use webauthn_rs::prelude::{
    AuthenticationResult, CreationChallengeResponse, Credential, Passkey, PasskeyAuthentication,
    PasskeyRegistration, PublicKeyCredential, RegisterPublicKeyCredential,
    RequestChallengeResponse, Url, Uuid, Webauthn, WebauthnBuilder,
};

use crate::clock::Millis;
use crate::config::{RelyingPartySettings, WebauthnSettings};
use crate::model::{TenantId, TokenHash};

/// A WebAuthn factor's data: the relying party it was enrolled under, the open
/// registration while it is unverified, and the credential once it is verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebauthnFactor {
    /// The relying party id (`[webauthn]` config), e.g. `login.example.com`.
    pub relying_party: Box<str>,
    pub registration: Option<PendingRegistration>,
    pub credential: Option<StoredCredential>,
}

/// An open registration ceremony: what the client was sent, the crate's state sealed to
/// the factor, the keyed hash of the enrollment page's token, and when it closes.
#[derive(Clone, PartialEq, Eq)]
pub struct PendingRegistration {
    /// The creation options (`{"publicKey": …}`), JSON text.
    pub options: Box<str>,
    /// The crate's `PasskeyRegistration`, JSON, sealed by [`super::SealKey`].
    pub sealed_state: Vec<u8>,
    /// The enrollment page's capability (`/enroll/{factor_id}?t=…`), as a keyed hash.
    pub page_token: TokenHash,
    pub expires_at: Millis,
}

impl std::fmt::Debug for PendingRegistration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingRegistration")
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// A registered credential (nothing in it is secret: the key is public).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCredential {
    /// The credential id the authenticator chose.
    pub id: Vec<u8>,
    /// The crate's `Passkey`, JSON: the public key and what the crate tracks of it.
    pub passkey: Box<str>,
    /// The last signature counter accepted.
    pub counter: u32,
    pub backup_eligible: bool,
    pub backup_state: bool,
}

impl StoredCredential {
    fn from_passkey(passkey: &Passkey) -> Self {
        let credential = Credential::from(passkey.clone());
        StoredCredential {
            id: passkey.cred_id().as_ref().to_vec(),
            passkey: serde_json::to_string(passkey)
                .expect("a passkey encodes")
                .into(),
            counter: credential.counter,
            backup_eligible: credential.backup_eligible,
            backup_state: credential.backup_state,
        }
    }

    fn passkey(&self) -> Option<Passkey> {
        serde_json::from_str(&self.passkey).ok()
    }

    /// The credential after an accepted assertion: its counter and backup flags as the
    /// authenticator reported them.
    pub fn used(&self, result: &AuthenticationResult) -> StoredCredential {
        let mut passkey = match self.passkey() {
            Some(p) => p,
            None => return self.clone(),
        };
        passkey.update_credential(result);
        let mut next = StoredCredential::from_passkey(&passkey);
        next.counter = next.counter.max(result.counter());
        next
    }
}

/// Whether an assertion's signature counter may follow the stored one: it must grow,
/// unless both are 0 (an authenticator that keeps no counter). Anything else may be a
/// cloned authenticator and is refused.
pub fn counter_advances(stored: u32, presented: u32) -> bool {
    (stored == 0 && presented == 0) || presented > stored
}

/// One relying party a tenant may enroll and authenticate under.
pub struct RelyingParty {
    pub id: String,
    pub origin: Url,
    pub name: String,
    webauthn: Webauthn,
}

impl std::fmt::Debug for RelyingParty {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RelyingParty")
            .field("id", &self.id)
            .field("origin", &self.origin.as_str())
            .finish_non_exhaustive()
    }
}

/// Why a ceremony's answer was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CeremonyMiss {
    /// The stored state does not read (another key, or a damaged record).
    Unreadable,
    /// The crate refused the answer: another challenge, another origin, a bad
    /// signature, a credential the ceremony did not allow, a malformed attestation.
    Refused,
}

impl RelyingParty {
    fn build(s: &RelyingPartySettings) -> Result<RelyingParty, String> {
        let origin = Url::parse(&s.origin).map_err(|e| format!("origin {:?}: {e}", s.origin))?;
        if s.name.is_empty() || s.name.chars().count() > 64 {
            return Err(format!(
                "relying party {:?}: name must be 1 to 64 characters",
                s.id
            ));
        }
        let webauthn = WebauthnBuilder::new(&s.id, &origin)
            .map_err(|_| {
                format!(
                    "relying party {:?}: its id must be the origin's host or a parent domain of it ({})",
                    s.id, s.origin
                )
            })?
            .rp_name(&s.name)
            .build()
            .map_err(|e| format!("relying party {:?}: {e}", s.id))?;
        Ok(RelyingParty {
            id: s.id.clone(),
            origin,
            name: s.name.clone(),
            webauthn,
        })
    }

    /// Opens a registration for a user: the creation options (JSON text, for the
    /// client) and the crate's state (JSON, to be sealed). `exclude` are the user's
    /// credential ids on this party, which the authenticator must not register again.
    pub fn start_registration(
        &self,
        user_handle: Uuid,
        user_name: &str,
        exclude: Vec<Vec<u8>>,
    ) -> Result<(String, zeroize::Zeroizing<Vec<u8>>), String> {
        let exclude = (!exclude.is_empty()).then(|| exclude.into_iter().map(Into::into).collect());
        let (options, state): (CreationChallengeResponse, PasskeyRegistration) = self
            .webauthn
            .start_passkey_registration(user_handle, user_name, user_name, exclude)
            .map_err(|e| e.to_string())?;
        let options = serde_json::to_string(&options).map_err(|e| e.to_string())?;
        let state = serde_json::to_vec(&state).map_err(|e| e.to_string())?;
        Ok((options, zeroize::Zeroizing::new(state)))
    }

    /// Finishes a registration: the credential, if the attestation answers the state's
    /// challenge from this party's origin.
    pub fn finish_registration(
        &self,
        attestation: &RegisterPublicKeyCredential,
        state: &[u8],
    ) -> Result<StoredCredential, CeremonyMiss> {
        let state: PasskeyRegistration =
            serde_json::from_slice(state).map_err(|_| CeremonyMiss::Unreadable)?;
        let passkey = self
            .webauthn
            .finish_passkey_registration(attestation, &state)
            .map_err(|e| {
                tracing::debug!(error = %e, "attestation refused");
                CeremonyMiss::Refused
            })?;
        Ok(StoredCredential::from_passkey(&passkey))
    }

    /// Opens an authentication allowing `credentials`: the request options (JSON text,
    /// for the client) and the crate's state (JSON text, kept with the challenge).
    pub fn start_authentication(
        &self,
        credentials: &[&StoredCredential],
    ) -> Result<(String, String), String> {
        let passkeys: Vec<Passkey> = credentials
            .iter()
            .map(|c| c.passkey().ok_or("a stored credential does not read"))
            .collect::<Result<_, _>>()?;
        let (options, state): (RequestChallengeResponse, PasskeyAuthentication) = self
            .webauthn
            .start_passkey_authentication(&passkeys)
            .map_err(|e| e.to_string())?;
        Ok((
            serde_json::to_string(&options).map_err(|e| e.to_string())?,
            serde_json::to_string(&state).map_err(|e| e.to_string())?,
        ))
    }

    /// Checks an assertion against an authentication's state: the signature over this
    /// challenge from this party's origin, by one of the allowed credentials.
    pub fn finish_authentication(
        &self,
        assertion: &PublicKeyCredential,
        state: &str,
    ) -> Result<AuthenticationResult, CeremonyMiss> {
        let state: PasskeyAuthentication =
            serde_json::from_str(state).map_err(|_| CeremonyMiss::Unreadable)?;
        self.webauthn
            .finish_passkey_authentication(assertion, &state)
            .map_err(|e| {
                tracing::debug!(error = %e, "assertion refused");
                CeremonyMiss::Refused
            })
    }
}

/// The relying parties of every tenant: a tenant's own list from
/// `[webauthn.tenants.<tenant>]`, else the server's `[[webauthn.relying_parties]]`. The
/// first of a list is the default of an enrollment that names none.
#[derive(Debug)]
pub struct RelyingParties {
    default: Vec<Arc<RelyingParty>>,
    tenants: HashMap<String, Vec<Arc<RelyingParty>>>,
    /// How long a registration stays open.
    pub enrollment_ttl_ms: i64,
}

impl RelyingParties {
    /// Builds every configured party; `Err` names the key and what is wrong.
    pub fn from_settings(s: &WebauthnSettings) -> Result<Self, (String, String)> {
        let build = |key: String, list: &[RelyingPartySettings]| {
            let mut seen = std::collections::HashSet::new();
            list.iter()
                .map(|rp| {
                    if !seen.insert(rp.id.as_str()) {
                        return Err((
                            key.clone(),
                            format!("relying party {:?} is listed twice", rp.id),
                        ));
                    }
                    RelyingParty::build(rp)
                        .map(Arc::new)
                        .map_err(|e| (key.clone(), e))
                })
                .collect::<Result<Vec<_>, _>>()
        };
        let default = build("webauthn.relying_parties".into(), &s.relying_parties)?;
        let mut tenants = HashMap::new();
        for (tenant, list) in &s.tenants {
            if TenantId::parse(tenant).is_none() {
                return Err((
                    format!("webauthn.tenants.{tenant}"),
                    "is not a valid tenant id".into(),
                ));
            }
            tenants.insert(
                tenant.clone(),
                build(format!("webauthn.tenants.{tenant}"), &list.relying_parties)?,
            );
        }
        Ok(RelyingParties {
            default,
            tenants,
            enrollment_ttl_ms: (s.enrollment_ttl_seconds as i64) * 1000,
        })
    }

    /// The parties `tenant` may use, its default first.
    pub fn of(&self, tenant: &TenantId) -> &[Arc<RelyingParty>] {
        self.tenants.get(tenant.as_str()).unwrap_or(&self.default)
    }

    /// The tenant's party `id`, or its default for `None`.
    pub fn find(&self, tenant: &TenantId, id: Option<&str>) -> Option<Arc<RelyingParty>> {
        let parties = self.of(tenant);
        match id {
            None => parties.first().cloned(),
            Some(id) => parties.iter().find(|rp| rp.id == id).cloned(),
        }
    }
}

/// Reads a credential as a client sends it: the JSON object
/// `navigator.credentials.create` / `get` returns (`toJSON()`, binary fields base64url),
/// or that object serialised into a JSON string.
fn read<T: serde::de::DeserializeOwned>(raw: &serde_json::Value) -> Option<T> {
    match raw {
        serde_json::Value::String(text) => serde_json::from_str(text).ok(),
        serde_json::Value::Object(_) => serde_json::from_value(raw.clone()).ok(),
        _ => None,
    }
}

/// An attestation (enrollment), if it has the shape of one.
pub fn parse_attestation(raw: &serde_json::Value) -> Option<RegisterPublicKeyCredential> {
    read(raw)
}

/// An assertion (a challenge's answer), if it has the shape of one.
pub fn parse_assertion(raw: &serde_json::Value) -> Option<PublicKeyCredential> {
    read(raw)
}

/// The user handle the authenticator stores for `user_id`: stable per tenant and user,
/// and a keyed hash, so it says nothing of the user id itself.
pub fn user_handle(
    key: &crate::challenge::kinds::HashKey,
    tenant: &TenantId,
    user_id: &str,
) -> Uuid {
    let hash = key.hash(&format!("webauthn-user\0{}\0{user_id}", tenant.as_str()));
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&hash.0[..16]);
    uuid_v4(bytes)
}

/// `bytes` with the version (4) and variant bits of a random UUID set.
fn uuid_v4(mut bytes: [u8; 16]) -> Uuid {
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    Uuid::from_bytes(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn party(id: &str, origin: &str) -> RelyingPartySettings {
        RelyingPartySettings {
            id: id.into(),
            origin: origin.into(),
            name: "Acme".into(),
        }
    }

    #[test]
    fn a_counter_must_grow_unless_the_authenticator_keeps_none() {
        assert!(counter_advances(0, 0));
        assert!(counter_advances(0, 1));
        assert!(counter_advances(4, 5));
        assert!(!counter_advances(5, 5));
        assert!(!counter_advances(5, 4));
        assert!(!counter_advances(5, 0));
    }

    #[test]
    fn a_party_id_must_be_its_origins_host_or_a_parent_of_it() {
        assert!(RelyingParty::build(&party("example.com", "https://login.example.com")).is_ok());
        assert!(RelyingParty::build(&party("localhost", "http://localhost:8080")).is_ok());
        let err = RelyingParty::build(&party("example.com", "https://example.org")).unwrap_err();
        assert!(err.contains("example.com"), "{err}");
        assert!(RelyingParty::build(&party("example.com", "not a url")).is_err());
    }

    #[test]
    fn a_tenant_uses_its_own_parties_else_the_servers() {
        let settings = WebauthnSettings {
            enrollment_ttl_seconds: 300,
            relying_parties: vec![party("localhost", "http://localhost:8080")],
            tenants: [(
                "acme".to_string(),
                crate::config::TenantRelyingParties {
                    relying_parties: vec![
                        party("acme.example", "https://acme.example"),
                        party("login.acme.example", "https://login.acme.example"),
                    ],
                },
            )]
            .into(),
        };
        let parties = RelyingParties::from_settings(&settings).unwrap();
        let acme = TenantId::parse("acme").unwrap();
        let globex = TenantId::parse("globex").unwrap();
        assert_eq!(parties.find(&acme, None).unwrap().id, "acme.example");
        assert_eq!(
            parties.find(&acme, Some("login.acme.example")).unwrap().id,
            "login.acme.example"
        );
        assert!(parties.find(&acme, Some("localhost")).is_none());
        assert_eq!(parties.find(&globex, None).unwrap().id, "localhost");
    }

    #[test]
    fn a_user_handle_is_stable_per_tenant_and_user() {
        let key = crate::challenge::kinds::HashKey::new([3; 32]);
        let acme = TenantId::parse("acme").unwrap();
        let globex = TenantId::parse("globex").unwrap();
        let alice = user_handle(&key, &acme, "alice");
        assert_eq!(alice, user_handle(&key, &acme, "alice"));
        assert_ne!(alice, user_handle(&key, &globex, "alice"));
        assert_ne!(alice, user_handle(&key, &acme, "bob"));
        assert_eq!(alice.get_version_num(), 4);
    }

    #[test]
    fn a_registration_opens_and_refuses_a_made_up_attestation() {
        let rp = RelyingParty::build(&party("localhost", "http://localhost:8080")).unwrap();
        let (options, state) = rp
            .start_registration(Uuid::from_bytes([1; 16]), "alice", Vec::new())
            .unwrap();
        let options: serde_json::Value = serde_json::from_str(&options).unwrap();
        assert_eq!(options["publicKey"]["rp"]["id"], "localhost");
        assert!(options["publicKey"]["challenge"].is_string());
        let forged = serde_json::json!({
            "id": "AAAA", "rawId": "AAAA", "type": "public-key",
            "response": {"attestationObject": "AAAA", "clientDataJSON": "AAAA"}
        });
        let forged = parse_attestation(&forged).expect("the shape of an attestation");
        assert_eq!(
            rp.finish_registration(&forged, &state),
            Err(CeremonyMiss::Refused)
        );
        assert!(parse_attestation(&serde_json::json!({"id": 1})).is_none());
        assert!(parse_attestation(&serde_json::json!(["x"])).is_none());
    }
}
