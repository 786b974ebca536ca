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

use super::kinds::{action, delivered, token};
use super::messages::*;
use super::state::{self, Event, Transition, Verdict};
use super::SharedServices;
use crate::actions::ActionJob;
use crate::clock::Millis;
use crate::metrics as m;
use crate::model::{Challenge, State};
use crate::model::{DeliveryStatus, ResendMode};
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
    /// An action of this challenge is running on a task.
    action_running: bool,
    /// The plain secret (code or link token) of each actor of a delivery challenge, for
    /// resends: in memory only, never in a snapshot. After a restart it is gone, and a
    /// resend issues new ones.
    secrets: Option<Box<[String]>>,
    /// Counts sends; a report from a send that a resend replaced is dropped.
    delivery_generation: u32,
    /// The first messages, rendered at create; taken by the first send.
    first_messages: Option<Vec<delivered::Outgoing>>,
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
            action_running: false,
            secrets: None,
            delivery_generation: 0,
            first_messages: None,
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
        if before == State::Issued && matches!(t.life.state, State::Verified | State::Declined) {
            if let Some(plan) = next.actions_mut() {
                // The choice is saved with the answer: a crash after the reply still runs it.
                action::choose(plan, t.life.state == State::Verified);
            }
        }
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
                    act.notify("state_changed", Some(before));
                }
                act.run_pending_action(ctx);
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

    /// Starts the next pending action, if any and none is running. Its outcome comes
    /// back as [`ActionFinished`].
    fn run_pending_action(&mut self, ctx: &mut Context<Self>) {
        if self.action_running {
            return;
        }
        let Some(plan) = self.challenge.actions() else {
            return;
        };
        let (Some(index), Some(set)) = (action::next_pending(plan), plan.chosen) else {
            return;
        };
        let subject = self
            .challenge
            .life
            .answered_by
            .and_then(|i| self.challenge.actors.get(usize::from(i)))
            .map_or_else(
                || self.challenge.user_id.to_string(),
                |a| a.user_id.to_string(),
            );
        let job = ActionJob {
            challenge_id: self.challenge.id.to_string(),
            tenant: self.challenge.tenant.to_string(),
            subject,
            set,
            index,
            action: plan.list(set)[index].clone(),
        };
        self.action_running = true;
        let runner = self.services.actions.clone();
        let me = ctx.address();
        actix::spawn(async move {
            let outcome = runner.execute(job).await;
            me.do_send(ActionFinished { index, outcome });
        });
    }

    /// Hands over the plain secrets and first messages of a just-created delivery
    /// challenge.
    pub fn with_prepared(mut self, prepared: Option<delivered::Prepared>) -> Self {
        if let Some(prepared) = prepared {
            self.secrets = Some(prepared.secrets);
            self.first_messages = Some(prepared.messages);
        }
        self
    }

    /// The kind's rules applied to a presented answer.
    fn verdict(&self, attempt: &token::Attempt) -> Result<Verdict, token::AttemptError> {
        // A challenge exists only for a kind with rules; should one not, nothing matches.
        match super::kinds::of(self.challenge.kind) {
            Some(kind) => kind.judge(&self.services.key, &self.challenge, attempt),
            None => Ok(Verdict::Unrecognized),
        }
    }

    /// Sends (again) every delivery that is pending, each on its own task.
    fn send_pending(&mut self, ctx: &mut Context<Self>) {
        let (Some(plan), Some(secrets)) = (self.challenge.delivery(), self.secrets.as_deref())
        else {
            return;
        };
        if self.challenge.life.state != State::Issued {
            return;
        }
        self.delivery_generation += 1;
        let generation = self.delivery_generation;
        let now = self.now();
        let services = &self.services;
        let max_attempts = services.delivery.max_attempts;
        let backoff = Duration::from_millis(services.delivery.backoff_ms);
        let mut first = self.first_messages.take().map(Vec::into_iter);
        for (index, actor) in plan.actors.iter().enumerate() {
            let prerendered = first.as_mut().and_then(Iterator::next);
            if actor.status != DeliveryStatus::Pending {
                continue;
            }
            let me = ctx.address();
            let rendered = match prerendered {
                Some(message) => Ok(message),
                None => delivered::render(
                    services.deliverer.templates(),
                    &self.challenge,
                    plan,
                    index,
                    &secrets[index],
                    &services.base_url,
                    now,
                ),
            };
            let message = match rendered {
                Ok(message) => message,
                Err(e) => {
                    me.do_send(DeliveryReport {
                        index,
                        generation,
                        attempt: 1,
                        outcome: Err(format!("template: {e}")),
                        last: true,
                    });
                    continue;
                }
            };
            let deliverer = services.deliverer.clone();
            actix::spawn(async move {
                for attempt in 1..=max_attempts {
                    let sent = match &message {
                        delivered::Outgoing::Email(m) => match deliverer.email() {
                            Some(t) => t.send(m).await,
                            None => Err(crate::delivery::DeliveryError::Transport(
                                "email is not configured".into(),
                            )),
                        },
                        delivered::Outgoing::Sms(m) => match deliverer.sms() {
                            Some(t) => t.send(m).await,
                            None => Err(crate::delivery::DeliveryError::Transport(
                                "SMS is not configured".into(),
                            )),
                        },
                    };
                    // A recipient that cannot take messages will not take a retry either.
                    let hopeless = matches!(&sent, Err(e) if e.kind() == "invalid_recipient" || e.kind() == "template");
                    let last = sent.is_ok() || hopeless || attempt == max_attempts;
                    me.do_send(DeliveryReport {
                        index,
                        generation,
                        attempt,
                        outcome: sent.map_err(|e| format!("{}: {e}", e.kind())),
                        last,
                    });
                    if last {
                        break;
                    }
                    tokio::time::sleep(backoff * 2u32.saturating_pow(attempt - 1)).await;
                }
            });
        }
    }

    /// New secrets for every actor (a rotating resend, or a send after a restart lost the
    /// old ones): their hashes replace the old ones in `next`.
    fn rotate_secrets(&mut self, next: &mut Challenge) {
        let Some(plan) = next.delivery().cloned() else {
            return;
        };
        let mut secrets = Vec::with_capacity(next.actors.len());
        for i in 0..next.actors.len() {
            let (secret, hash) = delivered::issue_secret(&self.services.key, next, &plan);
            next.actors[i].token_hash = hash;
            secrets.push(secret);
        }
        self.secrets = Some(secrets.into_boxed_slice());
    }

    /// At start: a delivery challenge with sends still pending (a crash came first, or this
    /// is a revival) sends them — with new secrets if the old ones are gone.
    fn resume_deliveries(&mut self, ctx: &mut Context<Self>) {
        let pending = self
            .challenge
            .delivery()
            .is_some_and(|p| p.actors.iter().any(|a| a.status == DeliveryStatus::Pending));
        if !pending || self.challenge.life.state != State::Issued {
            return;
        }
        if self.secrets.is_some() {
            self.send_pending(ctx);
            return;
        }
        let mut next: Challenge = (*self.challenge).clone();
        self.rotate_secrets(&mut next);
        if self.services.store.put(&next).is_err() {
            return;
        }
        self.challenge = Arc::new(next);
        let store = self.services.store.clone();
        ctx.wait(
            async move { store.durable().await }
                .into_actor(self)
                .map(|durable, act, ctx| {
                    if durable.is_ok() {
                        act.published.store(act.challenge.clone());
                        act.send_pending(ctx);
                    }
                }),
        );
    }

    /// Tells the calling service of a change: a signed POST to the challenge's
    /// `callback_url`, on a task (with its own retries), never awaited here.
    fn notify(&self, event: &'static str, previous: Option<State>) {
        let Some(url) = self.challenge.callback_url() else {
            return;
        };
        if self.services.actions.policy().check_url(url).is_err() {
            tracing::warn!(challenge = %self.challenge.id, "callback_url refused by the outbound policy; no webhook sent");
            return;
        }
        let c = &self.challenge;
        let answered_by = c.life.answered_by.and_then(|i| c.actors.get(usize::from(i))).map(|a| {
            serde_json::json!({"actor_id": a.id.to_string(), "user_id": a.user_id.to_string()})
        });
        let mut body = serde_json::json!({
            "event": event,
            "id": c.id.to_string(),
            "type": c.kind.as_str(),
            "user_id": c.user_id.to_string(),
            "state": c.life.state.as_str(),
            "previous_state": previous.map(State::as_str),
            "at": crate::clock::rfc3339(self.now()),
            "answered_by": answered_by,
        });
        if let Some(plan) = c.actions() {
            body["actions"] = serde_json::to_value(crate::api::native::dto::ActionsView::new(plan))
                .unwrap_or_default();
        }
        let secret = webhook_secret(&self.services.key, &c.tenant);
        let (url, body) = (url.to_string(), body.to_string().into_bytes());
        let deliverer = self.services.deliverer.clone();
        let id = c.id;
        actix::spawn(async move {
            if let Err(e) = deliverer
                .webhooks()
                .deliver(&url, body, secret.as_bytes())
                .await
            {
                tracing::warn!(challenge = %id, error = %e, "webhook not delivered");
            }
        });
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
        let pending = self
            .challenge
            .actions()
            .and_then(action::next_pending)
            .is_some();
        if pending {
            // Never forget an action that has not run; look again later.
            ctx.run_later(Duration::from_secs(60), |act, ctx| act.retire(ctx));
            return;
        }
        if let Err(e) = self
            .services
            .store
            .delete(&self.challenge.tenant, &self.challenge.id)
        {
            tracing::error!(error = %e, challenge = %self.challenge.id, "snapshot delete failed");
        }
        self.tenant.supervisor.do_send(Retired {
            id: self.challenge.id,
            idempotency_key: self.challenge.idempotency().map(|i| i.key.clone()),
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
        // After a restart or a revival: resume actions the answer chose but that never
        // finished, with the same idempotency keys; and deliveries never sent.
        self.run_pending_action(ctx);
        self.resume_deliveries(ctx);
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
        let verdict = match self.verdict(&attempt) {
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

impl Handler<ActionFinished> for ChallengeActor {
    type Result = ();

    fn handle(&mut self, msg: ActionFinished, ctx: &mut Context<Self>) {
        self.action_running = false;
        let mut next: Challenge = (*self.challenge).clone();
        let Some(plan) = next.actions_mut() else {
            return;
        };
        action::record(plan, msg.index, &msg.outcome, self.now());
        if let Err(e) = self.services.store.put(&next) {
            tracing::error!(error = %e, challenge = %next.id, "cannot record an action result; retrying the action later");
            ctx.run_later(Duration::from_secs(1), |act, ctx| {
                act.run_pending_action(ctx)
            });
            return;
        }
        self.challenge = Arc::new(next);
        let store = self.services.store.clone();
        ctx.wait(async move { store.durable().await }.into_actor(self).map(|durable, act, ctx| {
            match durable {
                Ok(()) => {
                    act.published.store(act.challenge.clone());
                    let finished = act.challenge.actions().is_some_and(|p| action::next_pending(p).is_none());
                    if finished {
                        act.notify("actions_finished", None);
                    }
                    act.run_pending_action(ctx);
                }
                Err(e) => tracing::error!(error = %e, challenge = %act.challenge.id, "action result not flushed"),
            }
        }));
    }
}

/// The secret a tenant's webhooks are signed with: derived from the server key, so it is
/// stable across restarts and differs per tenant (`GET /api/v1/webhooks/secret`).
pub fn webhook_secret(key: &super::HashKey, tenant: &crate::model::TenantId) -> String {
    hex::encode(key.hash(&format!("webhook-signing:{tenant}")).0)
}

impl Handler<Resend> for ChallengeActor {
    type Result = AtomicResponse<Self, Result<View, ChallengeError>>;

    fn handle(&mut self, _: Resend, _: &mut Context<Self>) -> Self::Result {
        let refuse = |e| AtomicResponse::new(Box::pin(fut::ready(Err(e))));
        let now = self.now();
        let Some(plan) = self.challenge.delivery() else {
            return refuse(ChallengeError::NotDeliverable);
        };
        // An expiry that is due counts even if its timer has not fired yet.
        let state = state::apply(self.challenge.life, Event::Expire, now)
            .life
            .state;
        if state != State::Issued {
            return refuse(ChallengeError::NotResendable(state));
        }
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
        if !plan
            .actors
            .iter()
            .all(|a| self.services.recipients.take(&a.recipient, now))
        {
            return refuse(ChallengeError::RecipientLimit);
        }
        let rotate = plan.resend_mode == ResendMode::Rotate || self.secrets.is_none();
        let mut next: Challenge = (*self.challenge).clone();
        if rotate {
            self.rotate_secrets(&mut next);
        }
        if let Some(plan) = next.delivery_mut() {
            plan.resends += 1;
            plan.last_sent_at = Some(now);
            for actor in &mut plan.actors {
                actor.status = DeliveryStatus::Pending;
                actor.attempts = 0;
                actor.last_error = None;
            }
        }
        if let Err(e) = self.services.store.put(&next) {
            return refuse(ChallengeError::Store(e.to_string()));
        }
        self.challenge = Arc::new(next);
        let store = self.services.store.clone();
        AtomicResponse::new(Box::pin(
            async move { store.durable().await }
                .into_actor(self)
                .map(|durable, act, ctx| {
                    durable.map_err(|e| ChallengeError::Store(e.to_string()))?;
                    act.published.store(act.challenge.clone());
                    act.send_pending(ctx);
                    Ok(act.challenge.clone())
                }),
        ))
    }
}

impl Handler<DeliveryReport> for ChallengeActor {
    type Result = ();

    fn handle(&mut self, report: DeliveryReport, _: &mut Context<Self>) {
        if report.generation != self.delivery_generation {
            return;
        }
        let now = self.now();
        let mut next: Challenge = (*self.challenge).clone();
        let Some(actor) = next
            .delivery_mut()
            .and_then(|p| p.actors.get_mut(report.index))
        else {
            return;
        };
        actor.attempts = report.attempt;
        match &report.outcome {
            Ok(()) => {
                actor.status = DeliveryStatus::Sent;
                actor.sent_at = Some(now);
                actor.last_error = None;
            }
            Err(reason) => {
                actor.last_error = Some(reason.chars().take(200).collect::<String>().into());
                actor.status = if report.last {
                    DeliveryStatus::Failed
                } else {
                    DeliveryStatus::Pending
                };
                tracing::info!(challenge = %next.id, attempt = report.attempt, error = %reason, "delivery attempt failed");
            }
        }
        // Delivery progress is news, not a promise: saved, published, flushed with the
        // next durable write.
        if let Err(e) = self.services.store.put(&next) {
            tracing::error!(error = %e, "cannot save a delivery report");
        }
        self.challenge = Arc::new(next);
        self.published.store(self.challenge.clone());
    }
}
