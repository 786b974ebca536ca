//! The messages a [`ChallengeActor`](super::ChallengeActor) handles. Every reply says
//! what can go wrong; a reply that carries the challenge carries it as a shared,
//! immutable [`View`].

use std::sync::Arc;

use actix::Message;
use tokio::sync::oneshot;

use super::kinds::token::{Attempt, AttemptError};
use super::state::Refusal;
use crate::model::{Challenge, State};

/// A challenge as it is at one moment; cheap to clone, never changes.
pub type View = Arc<Challenge>;

/// Read the challenge.
#[derive(Message, Clone, Copy)]
#[rtype(result = "View")]
pub struct Get;

/// Long-poll: answer now if the state differs from `unless` (default: the current
/// state), else hand back a receiver that fires on the next state change.
#[derive(Message, Clone, Copy)]
#[rtype(result = "Watching")]
pub struct Watch {
    pub unless: Option<State>,
}

pub enum Watching {
    Now(View),
    Later(oneshot::Receiver<View>),
}

/// Answer the challenge. Replies only after the outcome is durable.
#[derive(Message, Clone)]
#[rtype(result = "Result<View, ChallengeError>")]
pub struct Answer(pub Attempt);

/// Cancel an `issued` or `verified` challenge. Replies after the snapshot is durable.
#[derive(Message, Clone, Copy)]
#[rtype(result = "Result<View, ChallengeError>")]
pub struct Cancel;

/// Finalize a `verified` challenge. Replies after the snapshot is durable.
#[derive(Message, Clone, Copy)]
#[rtype(result = "Result<View, ChallengeError>")]
pub struct Complete;

/// Re-deliver the challenge to its recipients (the delivery kinds). Replies after any
/// new secret is durable; the sends themselves run afterwards.
#[derive(Message, Clone, Copy)]
#[rtype(result = "Result<View, ChallengeError>")]
pub struct Resend;

/// One attempt to deliver to actor `index` finished (sent by the task that sends).
#[derive(Message)]
#[rtype(result = "()")]
pub struct DeliveryReport {
    pub index: usize,
    /// Which send this attempt belongs to: reports of a send a resend replaced are dropped.
    pub generation: u32,
    pub attempt: u32,
    /// The error kind and reason of a failed attempt (never a secret).
    pub outcome: Result<(), String>,
    /// No further attempt follows.
    pub last: bool,
}

/// Stops the actor abruptly, as a crash would: no retirement, no snapshot. Lets tests
/// prove that a dead actor is restored from its last snapshot.
#[derive(Message, Clone, Copy)]
#[rtype(result = "()")]
pub struct Crash;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChallengeError {
    #[error("refused: {0:?}")]
    Refused(Refusal),
    #[error("bad attempt: {0:?}")]
    Attempt(AttemptError),
    #[error("too many failed anonymous answers")]
    RateLimited,
    #[error("this challenge type is not delivered")]
    NotDeliverable,
    #[error("only an issued challenge can be resent")]
    NotResendable(crate::model::State),
    #[error("no resends left")]
    ResendLimit(u32),
    #[error("resent too recently")]
    ResendCooldown { retry_after_seconds: u64 },
    #[error("the recipient has received too many messages today")]
    RecipientLimit,
    #[error("{0}")]
    Store(String),
}

/// An action of this challenge finished (sent by the task that ran it).
#[derive(Message)]
#[rtype(result = "()")]
pub struct ActionFinished {
    pub index: usize,
    pub outcome: super::kinds::action::Outcome,
}
