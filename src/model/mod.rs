//! Plain data: identifiers, the challenge record and its states, policies and a tenant's
//! runtime configuration. No I/O, no behaviour beyond parsing and formatting.

pub mod challenge;
pub mod configuration;
pub mod ids;
pub mod method;
pub mod policy;

pub use challenge::{
    ActionPlan, ActionResult, ActionSet, ActionStatus, ActorDelivery, ActorRecord, Alphabet,
    Challenge, ChallengeType, DeliveryChannel, DeliveryPlan, DeliveryStatus, DetailField, Details,
    Extras, HttpAction, Idempotency, KindData, Lifecycle, ResendMode, State, WebauthnPlan,
};
pub use configuration::{Properties, TenantConfig};
pub use ids::{
    ActorId, AnswerToken, ChallengeId, EventId, FactorId, MethodId, TenantId, TokenHash,
};
pub use method::{Method, MethodState};
pub use policy::{Policy, PolicyAlias, PolicyRef, PolicySpec};
