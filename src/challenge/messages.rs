//! The messages a [`ChallengeActor`](super::ChallengeActor) handles. Every reply says
//! what can go wrong; a reply that carries the challenge carries it as a shared,
//! immutable [`View`].

use std::sync::Arc;

use actix::Message;
use tokio::sync::oneshot;

use super::kinds::token::{Attempt, AttemptError};
use super::state::{self, Event, Refusal, Verdict};
use crate::clock::Millis;
use crate::model::{Challenge, State};

/// A challenge as it is at one moment; cheap to clone, never changes.
pub type View = Arc<Challenge>;

/// `view` as a reader at `now` must see it: an expiry that is due shows as `expired`
/// (ended at `expires_at`) even before the actor's timer has made it durable, so no read
/// shows `issued` after `expires_at`. Expiry depends on time alone, so a crash cannot
/// undo it: the restore expires the challenge the same way.
pub fn as_of(view: View, now: Millis) -> View {
    let life = view.life;
    if life.state.is_terminal() || now < life.expires_at {
        return view;
    }
    let mut due = (*view).clone();
    due.life = state::apply(life, Event::Expire, life.expires_at).life;
    Arc::new(due)
}

/// How a message is answered once its challenge has *settled*: a terminal challenge with
/// nothing left to run keeps no actor, and its final view answers for it. Terminal states
/// never change, so each command is refused exactly as the state machine refuses it.
pub trait Settled: Message {
    fn settled(self, view: &View) -> Self::Result;
}

fn refusal(view: &View, event: Event) -> ChallengeError {
    match state::apply(view.life, event, view.life.updated_at).result {
        Err(refusal) => ChallengeError::Refused(refusal),
        Ok(()) => unreachable!("a terminal challenge accepts no event"),
    }
}

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

/// Issue a `pending` challenge (and deliver it, for a delivered kind). Replies after
/// the snapshot is durable.
#[derive(Message, Clone, Default)]
#[rtype(result = "Result<View, ChallengeError>")]
pub struct Issue {
    /// A push challenge's announcement to the push gateway, written with the issue.
    pub announce: Option<crate::store::WebhookEvent>,
}

/// Give a `pending` or `issued` challenge a new lifetime: it expires `ttl_seconds`
/// after its creation, which may be earlier or later than before (already past: it
/// expires now). Replies after the snapshot is durable.
#[derive(Message, Clone, Copy)]
#[rtype(result = "Result<View, ChallengeError>")]
pub struct Retime {
    pub ttl_seconds: u64,
}

/// Finalize a `verified` challenge. Replies after the snapshot is durable.
#[derive(Message, Clone, Copy)]
#[rtype(result = "Result<View, ChallengeError>")]
pub struct Complete;

/// Re-deliver the challenge to its recipients (the delivery kinds). Replies after any
/// new secret is durable; the sends themselves run afterwards.
#[derive(Message, Clone, Copy)]
#[rtype(result = "Result<View, ChallengeError>")]
pub struct Resend;

/// Start method `method` of a challenge that offers several: issue its secret and
/// send it. Starting a method already started sends it again, under the resend rules
/// (cooldown, limit). Replies after the new secret is durable; the send runs afterwards.
#[derive(Message, Clone)]
#[rtype(result = "Result<View, ChallengeError>")]
pub struct Start {
    pub method: crate::model::MethodId,
    /// A push method's announcement to the push gateway, written with the start.
    pub announce: Option<crate::store::WebhookEvent>,
}

/// One attempt to deliver to actor `index` finished (sent by the task that sends).
#[derive(Message)]
#[rtype(result = "()")]
pub struct DeliveryReport {
    /// The method whose delivery it is; `None` for a challenge of one kind.
    pub method: Option<usize>,
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
/// prove that a dead actor is restored from its last durable state.
#[cfg(test)]
#[derive(Message, Clone, Copy)]
#[rtype(result = "()")]
pub struct Crash;

#[cfg(test)]
impl Settled for Crash {
    fn settled(self, _: &View) {}
}

impl Settled for Get {
    fn settled(self, view: &View) -> View {
        view.clone()
    }
}

impl Settled for Watch {
    fn settled(self, view: &View) -> Watching {
        // It will never change again: waiting would only delay the same answer.
        Watching::Now(view.clone())
    }
}

impl Settled for Answer {
    fn settled(self, view: &View) -> Result<View, ChallengeError> {
        if let Some(id) = self.0.method {
            if super::methods::find(view, id).is_none() {
                return Err(ChallengeError::Method(MethodError::Unknown));
            }
        }
        Err(refusal(view, Event::Answer(Verdict::Unrecognized)))
    }
}

impl Settled for Start {
    fn settled(self, view: &View) -> Result<View, ChallengeError> {
        Err(match super::methods::find(view, self.method) {
            None => ChallengeError::Method(MethodError::Unknown),
            Some(_) => ChallengeError::Method(MethodError::NotStartable(view.life.state)),
        })
    }
}

impl Settled for Cancel {
    fn settled(self, view: &View) -> Result<View, ChallengeError> {
        Err(refusal(view, Event::Cancel))
    }
}

impl Settled for Issue {
    fn settled(self, view: &View) -> Result<View, ChallengeError> {
        Err(refusal(view, Event::Issue))
    }
}

impl Settled for Retime {
    fn settled(self, view: &View) -> Result<View, ChallengeError> {
        Err(refusal(view, Event::Retime(view.created_at)))
    }
}

impl Settled for Complete {
    fn settled(self, view: &View) -> Result<View, ChallengeError> {
        Err(refusal(view, Event::Complete))
    }
}

impl Settled for Resend {
    fn settled(self, view: &View) -> Result<View, ChallengeError> {
        Err(match view.delivery() {
            None => ChallengeError::NotDeliverable,
            Some(_) => ChallengeError::NotResendable(view.life.state),
        })
    }
}

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
    #[error("method: {0:?}")]
    Method(MethodError),
    #[error("{0}")]
    Store(String),
}

/// What can go wrong with a method of a challenge that offers several.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MethodError {
    /// The method id names none of this challenge's methods.
    Unknown,
    /// The challenge offers several methods and the answer names none.
    Required,
    /// A delivered method answered before it was started.
    NotStarted,
    /// The method used up its attempts.
    Failed,
    /// Only a method of an issued challenge can be started.
    NotStartable(crate::model::State),
}

impl From<super::methods::MethodRefusal> for MethodError {
    fn from(r: super::methods::MethodRefusal) -> Self {
        match r {
            super::methods::MethodRefusal::NotStarted => MethodError::NotStarted,
            super::methods::MethodRefusal::Failed => MethodError::Failed,
        }
    }
}

/// An action of this challenge finished (sent by the task that ran it).
#[derive(Message)]
#[rtype(result = "()")]
pub struct ActionFinished {
    pub index: usize,
    pub outcome: super::kinds::action::Outcome,
}
