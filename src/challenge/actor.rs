//! `ChallengeActor`: owns one challenge, its expiry timer, its retention timer and its
//! long-poll waiters. Messages are handled one at a time, so first-answer-wins and expiry
//! need no lock. A state change is snapshotted and the reply (and any waiter) is sent
//! only once the group commit has made it durable; meanwhile the actor handles nothing
//! else (`AtomicResponse`), so nobody can observe a state that a crash could undo.

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use arc_swap::ArcSwap;
use tokio::sync::oneshot;

use super::kinds::token;
use super::messages::*;
use super::state::{self, Event, Transition, Verdict};
use super::SharedServices;
use crate::clock::Millis;
use crate::metrics as m;
use crate::model::{Challenge, State};
use crate::tenant::supervisor::Retired;
use crate::tenant::Tenant;

const ANONYMOUS_WINDOW_MS: Millis = 60_000;

pub struct ChallengeActor {
    challenge: View,
    /// Where readers find the last durable state without a message to this actor.
    published: Arc<ArcSwap<Challenge>>,
    services: SharedServices,
    tenant: Arc<Tenant>,
    waiters: Vec<oneshot::Sender<View>>,
    expiry: Option<SpawnHandle>,
    /// Failed anonymous answers in the current window: (window start, count).
    anonymous_failures: (Millis, u32),
}

impl ChallengeActor {
    pub fn new(
        published: Arc<ArcSwap<Challenge>>,
        services: SharedServices,
        tenant: Arc<Tenant>,
    ) -> Self {
        ChallengeActor {
            challenge: published.load_full(),
            published,
            services,
            tenant,
            waiters: Vec::new(),
            expiry: None,
            anonymous_failures: (0, 0),
        }
    }

    fn now(&self) -> Millis {
        self.services.clock.now_ms()
    }

    fn arm_timers(&mut self, ctx: &mut Context<Self>) {
        let now = self.now();
        let life = self.challenge.life;
        if let Some(delete_at) = self.challenge.delete_at() {
            ctx.run_later(until(now, delete_at), |act, ctx| act.retire(ctx));
        } else {
            let handle = ctx.run_later(until(now, life.expires_at), |act, ctx| {
                let transition = state::apply(act.challenge.life, Event::Expire, act.now());
                let commit = act.commit(transition);
                ctx.wait(commit.map(|_, _, _| ()));
            });
            self.expiry = Some(handle);
        }
    }

    /// Applies a transition: snapshot, wait for durability, then tell waiters and the
    /// tenant, and resolve to the caller's result.
    fn commit(&mut self, t: Transition) -> ResponseActFuture<Self, Result<View, ChallengeError>> {
        if !t.effects.changed {
            let reply = t
                .result
                .map(|_| self.challenge.clone())
                .map_err(ChallengeError::Refused);
            return Box::pin(fut::ready(reply));
        }
        let before = self.challenge.life.state;
        let mut next: Challenge = (*self.challenge).clone();
        next.life = t.life;
        if let Err(e) = self.services.store.put(&next) {
            tracing::error!(error = %e, challenge = %next.id, "snapshot write failed");
            return Box::pin(fut::ready(Err(ChallengeError::Store(e.to_string()))));
        }
        self.challenge = Arc::new(next);
        let store = self.services.store.clone();
        Box::pin(async move { store.durable().await }.into_actor(self).map(
            move |durable, act, ctx| {
                if let Err(e) = durable {
                    return Err(ChallengeError::Store(e.to_string()));
                }
                act.published.store(act.challenge.clone());
                if act.challenge.life.state != before {
                    act.wake_waiters();
                }
                if t.effects.ended {
                    act.ended(ctx);
                }
                t.result
                    .map(|_| act.challenge.clone())
                    .map_err(ChallengeError::Refused)
            },
        ))
    }

    fn wake_waiters(&mut self) {
        for waiter in self.waiters.drain(..) {
            let _ = waiter.send(self.challenge.clone());
        }
    }

    /// The challenge reached a terminal state: free its quota slot, count it, and keep it
    /// readable for the retention period.
    fn ended(&mut self, ctx: &mut Context<Self>) {
        self.tenant.release_slot();
        metrics::gauge!(m::LIVE).decrement(1.0);
        let kind = self.challenge.kind.as_str();
        match self.challenge.life.state {
            State::Expired => metrics::counter!(m::EXPIRED, "type" => kind).increment(1),
            State::Cancelled => metrics::counter!(m::CANCELLED, "type" => kind).increment(1),
            State::Completed => metrics::counter!(m::COMPLETED, "type" => kind).increment(1),
            State::Failed => metrics::counter!(m::FAILED, "type" => kind).increment(1),
            State::Verified | State::Declined | State::Issued => {}
        }
        if let Some(handle) = self.expiry.take() {
            ctx.cancel_future(handle);
        }
        self.arm_timers(ctx);
    }

    /// Retention is over: delete from disk and memory.
    fn retire(&mut self, ctx: &mut Context<Self>) {
        if let Err(e) = self
            .services
            .store
            .delete(&self.challenge.tenant, &self.challenge.id)
        {
            tracing::error!(error = %e, challenge = %self.challenge.id, "snapshot delete failed");
        }
        self.tenant.supervisor.do_send(Retired {
            id: self.challenge.id,
            idempotency_key: self.challenge.idempotency.as_ref().map(|i| i.key.clone()),
        });
        ctx.stop();
    }

    fn anonymous_limited(&mut self, now: Millis) -> bool {
        let (start, count) = &mut self.anonymous_failures;
        if now - *start >= ANONYMOUS_WINDOW_MS {
            *start = now;
            *count = 0;
        }
        *count
            >= self
                .tenant
                .config()
                .properties
                .anonymous_failures_per_challenge_per_minute
    }
}

fn until(now: Millis, at: Millis) -> Duration {
    Duration::from_millis(at.saturating_sub(now).max(0) as u64)
}

impl Actor for ChallengeActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        metrics::gauge!(m::ACTORS).increment(1.0);
        self.arm_timers(ctx);
    }

    fn stopped(&mut self, _ctx: &mut Context<Self>) {
        metrics::gauge!(m::ACTORS).decrement(1.0);
    }
}

impl Handler<Get> for ChallengeActor {
    type Result = MessageResult<Get>;

    fn handle(&mut self, _: Get, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.challenge.clone())
    }
}

impl Handler<Watch> for ChallengeActor {
    type Result = MessageResult<Watch>;

    fn handle(&mut self, msg: Watch, _: &mut Context<Self>) -> Self::Result {
        let current = self.challenge.life.state;
        if msg.unless.is_some_and(|s| s != current) {
            return MessageResult(Watching::Now(self.challenge.clone()));
        }
        self.waiters.retain(|w| !w.is_closed());
        let (tx, rx) = oneshot::channel();
        self.waiters.push(tx);
        MessageResult(Watching::Later(rx))
    }
}

impl Handler<Answer> for ChallengeActor {
    type Result = AtomicResponse<Self, Result<View, ChallengeError>>;

    fn handle(&mut self, Answer(attempt): Answer, _: &mut Context<Self>) -> Self::Result {
        let now = self.now();
        let verdict = match token::verify(&self.services.key, &self.challenge.actors, &attempt) {
            Ok(verdict) => verdict,
            Err(e) => {
                return AtomicResponse::new(Box::pin(fut::ready(Err(ChallengeError::Attempt(e)))))
            }
        };
        // Only failures are limited: a stranger spraying tokens must not lock out the
        // holder of the right one.
        if verdict == Verdict::Unrecognized {
            if self.anonymous_limited(now) {
                return AtomicResponse::new(Box::pin(fut::ready(Err(ChallengeError::RateLimited))));
            }
            self.anonymous_failures.1 += 1;
        }
        let transition = state::apply(self.challenge.life, Event::Answer(verdict), now);
        AtomicResponse::new(self.commit(transition))
    }
}

impl Handler<Cancel> for ChallengeActor {
    type Result = AtomicResponse<Self, Result<View, ChallengeError>>;

    fn handle(&mut self, _: Cancel, _: &mut Context<Self>) -> Self::Result {
        let transition = state::apply(self.challenge.life, Event::Cancel, self.now());
        AtomicResponse::new(self.commit(transition))
    }
}

impl Handler<Complete> for ChallengeActor {
    type Result = AtomicResponse<Self, Result<View, ChallengeError>>;

    fn handle(&mut self, _: Complete, _: &mut Context<Self>) -> Self::Result {
        let transition = state::apply(self.challenge.life, Event::Complete, self.now());
        AtomicResponse::new(self.commit(transition))
    }
}

impl Handler<Crash> for ChallengeActor {
    type Result = ();

    fn handle(&mut self, _: Crash, ctx: &mut Context<Self>) {
        tracing::warn!(challenge = %self.challenge.id, "challenge actor stopping abruptly on request");
        ctx.terminate();
    }
}
