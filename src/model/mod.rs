//! Plain data: identifiers, the challenge record and its states. No I/O, no behaviour
//! beyond parsing and formatting.

pub mod challenge;
pub mod ids;

pub use challenge::{
    ActionPlan, ActionResult, ActionSet, ActionStatus, ActorDelivery, ActorRecord, Alphabet,
    Challenge, ChallengeType, DeliveryChannel, DeliveryPlan, DeliveryStatus, DetailField, Details,
    Extras, HttpAction, Idempotency, Lifecycle, ResendMode, State,
};
pub use ids::{ActorId, AnswerToken, ChallengeId, TenantId, TokenHash};
