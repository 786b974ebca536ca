//! Per-kind rules: how a kind issues its secrets and turns a presented answer into a
//! [`Verdict`](super::state::Verdict). Pure functions over the challenge record and the
//! server's hashing key; nothing here saves or sends.

pub mod action;
pub mod code;
pub mod delivered;
pub mod token;

use std::sync::Arc;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::model::TokenHash;

/// The server key for keyed hashes of answer tokens and codes (HMAC-SHA256). Only the
/// hash is stored; comparisons are constant-time.
#[derive(Clone)]
pub struct HashKey(Arc<[u8; 32]>);

impl HashKey {
    pub fn new(key: [u8; 32]) -> Self {
        HashKey(Arc::new(key))
    }

    pub fn hash(&self, secret: &str) -> TokenHash {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0[..]).expect("any key length");
        mac.update(secret.as_bytes());
        TokenHash(mac.finalize().into_bytes().into())
    }

    pub fn matches(presented: &TokenHash, stored: &TokenHash) -> bool {
        presented.0.ct_eq(&stored.0).into()
    }
}

impl std::fmt::Debug for HashKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HashKey(***)")
    }
}
