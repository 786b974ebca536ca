//! Enrolled credentials ("factors") of a tenant's users: what a factor is, whatever its
//! type, and the rules of each type's data. A factor starts `unverified` and becomes
//! `verified` once the user proved they hold it; only verified factors back challenges.
//!
//! - `totp.rs`: RFC 6238 codes, seeds, key URIs and QR codes.
//! - `seal.rs`: the AEAD that keeps secrets (TOTP seeds) encrypted at rest.
//! - `push.rs`: device keys (P-256), their signatures and the device's own JWT.
//! - `webauthn.rs`: relying parties, registration and authentication ceremonies.
//!
//! The store (`store::factors`) keeps them, keyed by tenant and user; the engine
//! (`engine::factors`) runs enrollment, and `challenge::kinds::totp` judges a challenge's
//! code against a factor. A new factor type is a [`FactorType`] variant, a
//! [`FactorData`] variant with its data, and its enrollment and verification in the
//! engine.

pub mod push;
pub mod seal;
pub mod totp;
pub mod webauthn;

use serde::{Deserialize, Serialize};

use crate::clock::Millis;
use crate::metrics as m;
use crate::model::{FactorId, TenantId};
pub use seal::SealKey;

/// Every factor type the model knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FactorType {
    Totp,
    Webauthn,
    Push,
}

impl FactorType {
    pub const ALL: [FactorType; 3] = [FactorType::Totp, FactorType::Webauthn, FactorType::Push];

    pub fn as_str(self) -> &'static str {
        match self {
            FactorType::Totp => "totp",
            FactorType::Webauthn => "webauthn",
            FactorType::Push => "push",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }

    /// Whether this build can enroll the type.
    pub fn enabled(self) -> bool {
        true
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FactorStatus {
    /// Enrolled; the user has not yet shown they hold it.
    Unverified,
    /// Proven; it may back challenges.
    Verified,
}

impl FactorStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            FactorStatus::Unverified => "unverified",
            FactorStatus::Verified => "verified",
        }
    }
}

/// One enrolled factor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Factor {
    pub id: FactorId,
    pub tenant: TenantId,
    pub user_id: Box<str>,
    pub friendly_name: Box<str>,
    pub status: FactorStatus,
    pub created_at: Millis,
    /// When the factor itself last changed (enrolled, verified).
    pub updated_at: Millis,
    /// When a challenge was last answered with it.
    pub last_used_at: Option<Millis>,
    pub data: FactorData,
}

impl Factor {
    pub fn kind(&self) -> FactorType {
        match self.data {
            FactorData::Totp(_) => FactorType::Totp,
            FactorData::Push(_) => FactorType::Push,
            FactorData::Webauthn(_) => FactorType::Webauthn,
        }
    }
}

/// What a factor's type keeps: one variant per type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FactorData {
    Totp(TotpFactor),
    Push(push::PushFactor),
    Webauthn(webauthn::WebauthnFactor),
}

/// A TOTP factor: its parameters, its sealed seed, and the last time step a code was
/// accepted for (a step is accepted once: see `challenge::kinds::totp`).
#[derive(Clone, PartialEq, Eq)]
pub struct TotpFactor {
    pub params: totp::Params,
    /// The seed, sealed by [`SealKey`] to this factor.
    pub sealed_seed: Vec<u8>,
    pub last_step: Option<u64>,
}

impl std::fmt::Debug for TotpFactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TotpFactor")
            .field("params", &self.params)
            .field("last_step", &self.last_step)
            .finish_non_exhaustive()
    }
}

/// Why a presented TOTP code was not accepted. Callers answer every one the same way
/// (`wrong_answer`); the distinction is for metrics only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodeMiss {
    /// No step within the skew has this code.
    Wrong,
    /// The code is of a step at or before the last one accepted.
    Replayed,
    /// The seed does not open (another key, or a damaged record).
    Unreadable,
}

/// The step `code` is for, if it is later than the factor's last accepted one (the
/// earliest such when steps of the window share a code): what an accepted code
/// advances `last_step` to.
pub fn accept_totp(
    key: &SealKey,
    factor: &Factor,
    code: &str,
    unix_seconds: u64,
) -> Result<u64, CodeMiss> {
    let FactorData::Totp(totp) = &factor.data else {
        return Err(CodeMiss::Wrong);
    };
    let seed = key
        .open(&factor.tenant, &factor.id, &totp.sealed_seed)
        .ok_or(CodeMiss::Unreadable)?;
    match totp::matching_step(&totp.params, &seed, code, unix_seconds, totp.last_step) {
        totp::Matched::Fresh(step) => Ok(step),
        totp::Matched::Spent => Err(CodeMiss::Replayed),
        totp::Matched::Nothing => Err(CodeMiss::Wrong),
    }
}

/// `factor` with a code of `step` accepted.
pub fn with_step(factor: &Factor, step: u64) -> Factor {
    let mut next = factor.clone();
    if let FactorData::Totp(totp) = &mut next.data {
        totp.last_step = Some(step);
    }
    next
}

/// Counts a code checked against a factor: a verification and its outcome, and a replay
/// as such.
pub fn count_code(kind: &'static str, outcome: Result<(), CodeMiss>) {
    let label = if outcome.is_ok() {
        "verified"
    } else {
        "wrong_answer"
    };
    metrics::counter!(m::FACTOR_VERIFICATIONS, "type" => kind, "outcome" => label).increment(1);
    match outcome {
        Err(CodeMiss::Replayed) => metrics::counter!(m::TOTP_REPLAYS).increment(1),
        Err(CodeMiss::Unreadable) => tracing::error!(
            "a factor's sealed secret does not open: is storage.secrets_key_file the key it was sealed with?"
        ),
        Err(CodeMiss::Wrong) | Ok(()) => {}
    }
}
