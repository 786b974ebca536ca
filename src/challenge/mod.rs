//! One live challenge, one actor. `state` is the pure state machine, `kinds` the rules by
//! which each kind issues and verifies answers, `actor` the `ChallengeActor` that owns a
//! challenge and executes the effects, `messages` what it handles.

pub mod actor;
pub mod kinds;
pub mod messages;
pub mod state;

use std::sync::Arc;

use crate::clock::SharedClock;
use crate::config::Limits;
use crate::store::SnapshotStore;

pub use actor::ChallengeActor;
pub use kinds::HashKey;

/// What every challenge actor and supervisor needs, shared.
pub struct Services {
    pub deliverer: crate::delivery::Deliverer,
    pub recipients: crate::delivery::cap::RecipientCap,
    pub delivery: crate::config::DeliverySettings,
    /// Origin of the links the server sends (`server.public_base_url`, no trailing `/`).
    pub base_url: String,
    pub store: SnapshotStore,
    pub actions: Arc<crate::actions::ActionRunner>,
    pub clock: SharedClock,
    pub key: HashKey,
    pub limits: Limits,
}

pub type SharedServices = Arc<Services>;
