//! The methods of a challenge that offers several ways to answer it: one per type
//! (`sms_otp`, `email_otp`, `email_link`, `totp`, `push`, `token`), each with its own
//! secrets, delivery and attempt count. A delivered method (and a push method) is
//! *started* — its code sent, its device told — only when asked; the first method
//! answered correctly wins the challenge, and the others close with it.
//!
//! The challenge itself keeps its one [`Lifecycle`](super::Lifecycle): its state, its
//! expiry, and as its attempts the fewest wrong answers any method has had, so that it
//! fails exactly when every method has failed. What a method keeps beyond that is here.

use serde::{Deserialize, Serialize};

use super::challenge::{ChallengeType, KindData, State};
use super::ids::{MethodId, TokenHash};
use crate::clock::Millis;

/// Where one method stands. A method that is `open` when its challenge has left
/// `issued` is shown as `closed`: the challenge's state closed it, in the same write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum MethodState {
    /// May be answered (once started, for a delivered method).
    Open,
    /// Its correct answer verified the challenge.
    Verified,
    /// Its correct answer declined the challenge (`allowed: false`).
    Declined,
    /// Used up its attempts: it takes no further answer.
    Failed,
}

/// One way to answer a challenge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Method {
    pub id: MethodId,
    pub kind: ChallengeType,
    pub state: MethodState,
    /// Wrong answers to this method so far.
    pub attempts: u32,
    pub max_attempts: u32,
    /// When it was first started (its code first sent); a method that is not delivered
    /// is started when the challenge is created.
    pub started_at: Option<Millis>,
    /// The keyed hash of each actor's secret for this method, in actor order (a code,
    /// or an answer token); a delivered method not yet started has none that anybody
    /// knows.
    pub hashes: Vec<TokenHash>,
    /// What its kind keeps: a delivery plan, an enrolled factor, or nothing.
    pub data: KindData,
}

impl Method {
    pub fn attempts_left(&self) -> u32 {
        self.max_attempts.saturating_sub(self.attempts)
    }

    pub fn started(&self) -> bool {
        self.started_at.is_some()
    }

    /// The state a reader is shown, given the challenge's.
    pub fn shown_state(&self, challenge: State) -> &'static str {
        match self.state {
            MethodState::Open if challenge != State::Issued => "closed",
            MethodState::Open => "open",
            MethodState::Verified => "verified",
            MethodState::Declined => "declined",
            MethodState::Failed => "failed",
        }
    }

    pub fn delivery(&self) -> Option<&super::DeliveryPlan> {
        match &self.data {
            KindData::Delivery(plan) => Some(plan),
            _ => None,
        }
    }

    pub fn delivery_mut(&mut self) -> Option<&mut super::DeliveryPlan> {
        match &mut self.data {
            KindData::Delivery(plan) => Some(plan),
            _ => None,
        }
    }
}

impl super::Challenge {
    /// Whether it is answered by a method of `kind`: its own kind, or one of its methods'.
    pub fn offers(&self, kind: ChallengeType) -> bool {
        self.kind == kind || self.methods().iter().any(|m| m.kind == kind)
    }

    /// The enrolled factors that answer it: its own, and its methods' (started or not).
    pub fn factors(&self) -> impl Iterator<Item = super::FactorId> + '_ {
        self.factor()
            .into_iter()
            .chain(self.methods().iter().filter_map(|m| match m.data {
                KindData::Factor(id) => Some(id),
                _ => None,
            }))
    }

    /// Whether `factor` answers it now: its own factor, or that of a method that was
    /// started (a push method reaches its device only once started).
    pub fn answered_by_factor(&self, factor: super::FactorId) -> bool {
        self.factor() == Some(factor)
            || self
                .methods()
                .iter()
                .any(|m| m.started() && m.data == KindData::Factor(factor))
    }
}
