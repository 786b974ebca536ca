//! Plain data: identifiers, the challenge record and its states, policies and a tenant's
//! runtime configuration. No I/O, no behaviour beyond parsing and formatting.

pub mod challenge;
pub mod configuration;
pub mod ids;
pub mod policy;

pub use challenge::{
    ActorRecord, Challenge, ChallengeType, DetailField, Details, Idempotency, Lifecycle, State,
};
pub use configuration::{Properties, TenantConfig};
pub use ids::{ActorId, AnswerToken, ChallengeId, TenantId, TokenHash};
pub use policy::{Policy, PolicyAlias, PolicyRef, PolicySpec};
