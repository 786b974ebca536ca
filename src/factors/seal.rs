//! Secrets at rest that must stay usable (a TOTP seed is needed in the clear to compute
//! a code, so it cannot be hashed like answer tokens): AES-256-GCM under the secrets
//! key, a fresh 96-bit random nonce per seal, and the tenant and factor id as associated
//! data — a sealed seed copied onto another factor or tenant does not open.
//!
//! Layout of a sealed value: nonce (12 bytes) ‖ ciphertext ‖ tag (16 bytes).

use std::sync::Arc;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use rand::RngCore;
use zeroize::Zeroizing;

use crate::model::{FactorId, TenantId};

const NONCE_LEN: usize = 12;

/// The key that seals factors' secrets. Never printed.
#[derive(Clone)]
pub struct SealKey(Arc<Aes256Gcm>);

impl std::fmt::Debug for SealKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SealKey(***)")
    }
}

impl SealKey {
    pub fn new(key: &[u8; 32]) -> Self {
        SealKey(Arc::new(Aes256Gcm::new(&Key::<Aes256Gcm>::from(*key))))
    }

    /// `plain`, encrypted and bound to the factor.
    pub fn seal(&self, tenant: &TenantId, factor: &FactorId, plain: &[u8]) -> Vec<u8> {
        self.seal_with(&associated_data(tenant, factor), plain)
    }

    /// `plain`, encrypted and bound to one record of a vendor face (`namespace`, `name`)
    /// of `tenant`: a secret the face keeps there (Agilicus' `answer_data`).
    pub fn seal_record(
        &self,
        tenant: &TenantId,
        namespace: &str,
        name: &str,
        plain: &[u8],
    ) -> Vec<u8> {
        self.seal_with(&record_data(tenant, namespace, name), plain)
    }

    /// What [`SealKey::seal_record`] sealed for that record; `None` for anything else.
    pub fn open_record(
        &self,
        tenant: &TenantId,
        namespace: &str,
        name: &str,
        sealed: &[u8],
    ) -> Option<Zeroizing<Vec<u8>>> {
        self.open_with(&record_data(tenant, namespace, name), sealed)
    }

    fn seal_with(&self, aad: &[u8], plain: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let sealed = self
            .0
            .encrypt(&Nonce::from(nonce), Payload { msg: plain, aad })
            .expect("AES-GCM encrypts any message of this size");
        let mut out = Vec::with_capacity(NONCE_LEN + sealed.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        out
    }

    /// The plain secret; `None` if `sealed` was not sealed under this key for this factor.
    pub fn open(
        &self,
        tenant: &TenantId,
        factor: &FactorId,
        sealed: &[u8],
    ) -> Option<Zeroizing<Vec<u8>>> {
        self.open_with(&associated_data(tenant, factor), sealed)
    }

    fn open_with(&self, aad: &[u8], sealed: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
        if sealed.len() < NONCE_LEN {
            return None;
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().ok()?;
        self.0
            .decrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: ciphertext,
                    aad,
                },
            )
            .ok()
            .map(Zeroizing::new)
    }
}

/// `face-record \0 tenant \0 namespace \0 name`: what a face record's secret is bound to.
fn record_data(tenant: &TenantId, namespace: &str, name: &str) -> Vec<u8> {
    let mut aad = Vec::with_capacity(16 + tenant.as_str().len() + namespace.len() + name.len());
    aad.extend_from_slice(b"face-record\0");
    aad.extend_from_slice(tenant.as_str().as_bytes());
    aad.push(0);
    aad.extend_from_slice(namespace.as_bytes());
    aad.push(0);
    aad.extend_from_slice(name.as_bytes());
    aad
}

/// `factor-seed \0 tenant \0 factor id`: what a sealed seed is bound to.
fn associated_data(tenant: &TenantId, factor: &FactorId) -> Vec<u8> {
    let mut aad = Vec::with_capacity(12 + tenant.as_str().len() + 17);
    aad.extend_from_slice(b"factor-seed\0");
    aad.extend_from_slice(tenant.as_str().as_bytes());
    aad.push(0);
    aad.extend_from_slice(factor.as_bytes());
    aad
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_record_secret_opens_only_for_its_record() {
        let key = SealKey::new(&[7; 32]);
        let acme = TenantId::parse("acme").unwrap();
        let globex = TenantId::parse("globex").unwrap();
        let sealed = key.seal_record(&acme, "ns", "a", b"secret");
        assert!(!sealed.windows(6).any(|w| w == b"secret"));
        assert_eq!(
            key.open_record(&acme, "ns", "a", &sealed)
                .unwrap()
                .as_slice(),
            b"secret"
        );
        assert!(key.open_record(&acme, "ns", "b", &sealed).is_none());
        assert!(key.open_record(&acme, "other", "a", &sealed).is_none());
        assert!(key.open_record(&globex, "ns", "a", &sealed).is_none());
        let factor = FactorId::random();
        assert!(key.open(&acme, &factor, &sealed).is_none());
    }

    #[test]
    fn a_sealed_secret_opens_only_for_its_tenant_and_factor_under_its_key() {
        let key = SealKey::new(&[7; 32]);
        let acme = TenantId::parse("acme").unwrap();
        let globex = TenantId::parse("globex").unwrap();
        let id = FactorId::random();
        let sealed = key.seal(&acme, &id, b"seed bytes");
        assert!(!sealed.windows(10).any(|w| w == b"seed bytes"));
        assert_eq!(
            key.open(&acme, &id, &sealed).as_deref().map(Vec::as_slice),
            Some(&b"seed bytes"[..])
        );
        assert!(key.open(&globex, &id, &sealed).is_none());
        assert!(key.open(&acme, &FactorId::random(), &sealed).is_none());
        assert!(SealKey::new(&[8; 32]).open(&acme, &id, &sealed).is_none());
        assert_ne!(sealed, key.seal(&acme, &id, b"seed bytes"), "fresh nonce");
    }
}
