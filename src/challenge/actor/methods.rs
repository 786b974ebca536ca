//! What a [`ChallengeActor`] does for a challenge that offers several methods: an
//! answer that names its method (judged by that method's kind, against that method's
//! secrets), and [`Start`], which issues a delivered method's secret and sends it. Both
//! go through the actor's one write path, so a method's answer, the closing of the
//! others and the challenge's new state are one durable snapshot.

use actix::prelude::*;

use super::ChallengeActor;
use crate::challenge::kinds::{self, token};
use crate::challenge::messages::*;
use crate::challenge::methods::{self, MethodLife};
use crate::challenge::state::{self, Event, Verdict};
use crate::model::{Challenge, DeliveryStatus, MethodState, ResendMode, State};

fn refuse(e: ChallengeError) -> ResponseActFuture<ChallengeActor, Result<View, ChallengeError>> {
    Box::pin(fut::ready(Err(e)))
}

impl ChallengeActor {
    /// An answer to a challenge that offers several methods, or one that names a method.
    pub(super) fn answer_method(
        &mut self,
        attempt: token::Attempt,
    ) -> ResponseActFuture<Self, Result<View, ChallengeError>> {
        let now = self.now();
        let index = match (attempt.method, &attempt.token) {
            (Some(id), _) => match methods::find(&self.challenge, id) {
                Some(index) => index,
                None => return refuse(ChallengeError::Method(MethodError::Unknown)),
            },
            // An answer token names its method itself (a token method's, a link's).
            (None, Some(token)) => {
                match methods::by_token(&self.services.key, &self.challenge, token) {
                    Some(index) => index,
                    None if attempt.on_behalf => {
                        return refuse(ChallengeError::Method(MethodError::Required))
                    }
                    // A stranger's token proves nothing and costs nothing, but counts.
                    None => {
                        if self.anonymous_limited(now) {
                            return refuse(ChallengeError::RateLimited);
                        }
                        self.anonymous_failures.1 += 1;
                        return refuse(ChallengeError::Refused(state::Refusal::Unrecognized));
                    }
                }
            }
            (None, None) => return refuse(ChallengeError::Method(MethodError::Required)),
        };
        let tallies: Vec<MethodLife> = self.challenge.methods().iter().map(Into::into).collect();
        // Refusals that need no verdict come first, so that judging (which may use up a
        // factor's time step) happens only for an answer that can count.
        match methods::answer(
            self.challenge.life,
            &tallies,
            index,
            Verdict::Unrecognized,
            now,
        ) {
            Err(refusal) => return refuse(ChallengeError::Method(refusal.into())),
            Ok(step) if step.transition.life.state != State::Issued => {
                return self.commit(step.transition)
            }
            Ok(_) => {}
        }
        let face = methods::face(&self.challenge, index);
        let verdict = match kinds::of(face.kind) {
            Some(kind) => match kind.judge_in(&self.services, &face, &attempt, now) {
                Ok(verdict) => verdict,
                Err(e) => return refuse(e),
            },
            None => Verdict::Unrecognized,
        };
        if verdict == Verdict::Unrecognized {
            if self.anonymous_limited(now) {
                return refuse(ChallengeError::RateLimited);
            }
            self.anonymous_failures.1 += 1;
        }
        match methods::answer(self.challenge.life, &tallies, index, verdict, now) {
            Err(refusal) => refuse(ChallengeError::Method(refusal.into())),
            Ok(step) => {
                let tallies = step.methods;
                self.commit_with(step.transition, move |next| methods::record(next, &tallies))
            }
        }
    }
}

impl Handler<Start> for ChallengeActor {
    type Result = AtomicResponse<Self, Result<View, ChallengeError>>;

    fn handle(&mut self, msg: Start, _: &mut Context<Self>) -> Self::Result {
        AtomicResponse::new(self.start(msg.method, msg.announce))
    }
}

impl ChallengeActor {
    fn start(
        &mut self,
        id: crate::model::MethodId,
        announce: Option<crate::store::WebhookEvent>,
    ) -> ResponseActFuture<Self, Result<View, ChallengeError>> {
        let Some(index) = methods::find(&self.challenge, id) else {
            return refuse(ChallengeError::Method(MethodError::Unknown));
        };
        let now = self.now();
        // An expiry that is due counts even if its timer has not fired yet.
        let state = state::apply(self.challenge.life, Event::Expire, now)
            .life
            .state;
        if state != State::Issued {
            return refuse(ChallengeError::Method(MethodError::NotStartable(state)));
        }
        let method = &self.challenge.methods()[index];
        if method.state == MethodState::Failed {
            return refuse(ChallengeError::Method(MethodError::Failed));
        }
        let on_demand = kinds::of(method.kind).is_some_and(|k| k.starts_on_demand());
        let Some(plan) = method.delivery() else {
            return match (on_demand, method.started()) {
                (false, _) => refuse(ChallengeError::NotDeliverable),
                // Shown to its device already: nothing more to send.
                (true, true) => Box::pin(fut::ready(Ok(self.challenge.clone()))),
                (true, false) => self.start_undelivered(index, announce, now),
            };
        };
        let started = method.started();
        if started {
            // Started already: sending it again is a resend, under the resend rules.
            if plan.resends >= plan.max_resends {
                return refuse(ChallengeError::ResendLimit(plan.max_resends));
            }
            if let Some(last) = plan.last_sent_at {
                let ready_at = last + i64::from(plan.resend_cooldown_seconds) * 1000;
                if now < ready_at {
                    let retry_after_seconds = ((ready_at - now) as u64).div_ceil(1000);
                    return refuse(ChallengeError::ResendCooldown {
                        retry_after_seconds,
                    });
                }
            }
        }
        let recipients = plan.actors.iter().map(|a| &*a.recipient);
        let Some(reservation) =
            self.services
                .recipients
                .take(&self.challenge.tenant, recipients, now)
        else {
            return refuse(ChallengeError::RecipientLimit);
        };
        let rotate = !started
            || plan.resend_mode == ResendMode::Rotate
            || self.method_secrets[index].is_none();
        let mut next: Challenge = (*self.challenge).clone();
        let mut face = methods::face(&next, index);
        let secrets = if rotate {
            self.rotate_secrets(&mut face)
        } else {
            None
        };
        if let Some(plan) = face.delivery_mut() {
            if started {
                plan.resends += 1;
            }
            plan.last_sent_at = Some(now);
            for actor in &mut plan.actors {
                actor.status = DeliveryStatus::Pending;
                actor.attempts = 0;
                actor.last_error = None;
            }
        }
        methods::absorb(&mut next, index, &face);
        if let Some(method) = next.methods_mut().and_then(|m| m.get_mut(index)) {
            method.started_at.get_or_insert(now);
        }
        Box::pin(self.persist(next).map(move |persisted, act, ctx| {
            if persisted.is_err() {
                // Nothing is sent: the recipients' caps get their sends back.
                act.services.recipients.refund(reservation);
                persisted?;
            }
            if secrets.is_some() {
                act.method_secrets[index] = secrets;
            }
            act.send_method(ctx, index);
            Ok(act.challenge.clone())
        }))
    }

    /// Starts a method that is not delivered but waits to be started (push): from now on
    /// its device sees it; its announcement, if any, is written with the same flush.
    fn start_undelivered(
        &mut self,
        index: usize,
        announce: Option<crate::store::WebhookEvent>,
        now: crate::clock::Millis,
    ) -> ResponseActFuture<Self, Result<View, ChallengeError>> {
        let mut next: Challenge = (*self.challenge).clone();
        if let Some(method) = next.methods_mut().and_then(|m| m.get_mut(index)) {
            method.started_at = Some(now);
        }
        Box::pin(self.persist_with(next, announce).map(|persisted, act, _| {
            persisted?;
            Ok(act.challenge.clone())
        }))
    }
}
